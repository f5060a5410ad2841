/* Machine probe for docs/BENCHMARKS.md: the latency of dependent random loads (a pointer
 * chase) over buffers from 16 MiB to 4 GiB, after the buffer has been touched once. Past
 * the caches each load is a TLB miss; with the guest's memory backed by large host pages
 * the walk stays cheap, with small host pages it grows. `./mr huge` asks for transparent
 * huge pages in the guest too (MADV_HUGEPAGE). `gcc -O2 memory_reach.c -o mr`. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static uint64_t next_random(uint64_t *state) {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    return *state;
}

int main(int argc, char **argv) {
    int huge = argc > 1 && strcmp(argv[1], "huge") == 0;
    const size_t sizes_mib[] = {16, 256, 1024, 4096};
    const size_t loads = 20 * 1000 * 1000;
    for (size_t s = 0; s < sizeof sizes_mib / sizeof sizes_mib[0]; s++) {
        size_t bytes = sizes_mib[s] << 20;
        size_t slots = bytes / 64; /* one pointer per cache line */
        uint64_t *memory = mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (memory == MAP_FAILED) {
            perror("mmap");
            return 1;
        }
        if (huge && madvise(memory, bytes, MADV_HUGEPAGE) != 0) perror("madvise");
        /* A random cycle through every slot (Sattolo's shuffle of the slot order). */
        uint32_t *order = malloc(slots * sizeof *order);
        if (!order) return 1;
        for (size_t i = 0; i < slots; i++) order[i] = (uint32_t)i;
        uint64_t state = 88172645463325252ull;
        for (size_t i = slots - 1; i > 0; i--) {
            size_t j = next_random(&state) % i;
            uint32_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (size_t i = 0; i < slots; i++) memory[(size_t)order[i] * 8] = (size_t)order[(i + 1) % slots] * 8;
        free(order);
        size_t at = 0;
        double start = now_ns();
        for (size_t i = 0; i < loads; i++) at = memory[at];
        double elapsed = now_ns() - start;
        printf("%5zu MiB: %.1f ns per dependent load (end %zu)\n", sizes_mib[s], elapsed / loads, at);
        munmap(memory, bytes);
    }
    return 0;
}
