/* Machine probe for docs/BENCHMARKS.md: how late a 100 µs nanosleep wakes up, over 5 s.
 * `gcc -O2 sleep_jitter.c -o sleep_jitter`. */
#include <stdio.h>
#include <time.h>

static double now_us(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

int main(void) {
    double end = now_us() + 5e6, worst = 0;
    long sleeps = 0, over_1ms = 0;
    while (now_us() < end) {
        double start = now_us();
        struct timespec request = {0, 100000};
        nanosleep(&request, 0);
        double late = now_us() - start - 100;
        if (late > worst) worst = late;
        if (late > 1000) over_1ms++;
        sleeps++;
    }
    printf("%ld sleeps of 100 us: worst %.0f us late, %ld more than 1 ms late\n", sleeps, worst,
           over_1ms);
    return 0;
}
