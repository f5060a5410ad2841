/* Machine probe for docs/BENCHMARKS.md: cost of a syscall, of touching fresh anonymous
 * memory, and of touching it again after munmap. `gcc -O2 page_faults.c -o page_faults`. */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static double touch_ns_per_page(size_t bytes) {
    char *p = mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return -1;
    double start = now_ns();
    for (size_t i = 0; i < bytes; i += 4096) p[i] = 1;
    double elapsed = now_ns() - start;
    munmap(p, bytes);
    return elapsed / (bytes / 4096.0);
}

int main(void) {
    double start = now_ns();
    for (int i = 0; i < 1000000; i++) syscall(SYS_getppid);
    printf("syscall (getppid): %.0f ns\n", (now_ns() - start) / 1e6);
    printf("first touch: %.0f ns/page\n", touch_ns_per_page(1UL << 30));
    printf("touch after munmap: %.0f ns/page\n", touch_ns_per_page(1UL << 30));
    return 0;
}
