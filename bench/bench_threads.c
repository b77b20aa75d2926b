/* bench_threads — the malloc family under several threads.
 *
 *   bench_threads [--quick]
 *     own/N   N threads (1, 2, 4) each churn a private working set of blocks (random sizes
 *             8-512, weighted small): aggregate ns per malloc+free step (wall time / steps)
 *     pc/N    N producer/consumer pairs: the producer mallocs and fills blocks and passes them
 *             through a bounded single-producer single-consumer ring; the consumer checks and
 *             frees them, so every block is freed by a thread other than its allocator;
 *             aggregate ns per block (wall time / blocks) and blocks per second
 */
#include "common.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_THREADS 8

static pthread_barrier_t start_line;

/* ---- own: private churn ---- */

struct own_arg {
    size_t steps;
    unsigned id;
};

static void *own_worker(void *argp)
{
    const struct own_arg *arg = argp;
    enum { SLOTS = 4096 };
    void *ptrs[SLOTS];
    uint32_t sizes[SLOTS];
    uint64_t rng = 1000 + arg->id;
    for (size_t i = 0; i < SLOTS; i++) {
        size_t n = small_size(&rng);
        ptrs[i] = malloc(n);
        check_block(ptrs[i], n, owed_alignment(n), "own malloc");
        fill_block(ptrs[i], n, block_tag(i, 0));
        sizes[i] = (uint32_t)n;
    }
    uint64_t *gen = calloc(SLOTS, sizeof *gen);
    if (gen == NULL)
        die("out of memory for bookkeeping");
    pthread_barrier_wait(&start_line);
    for (size_t step = 0; step < arg->steps; step++) {
        size_t i = (size_t)rng_below(&rng, SLOTS);
        verify_block(ptrs[i], sizes[i], block_tag(i, gen[i]), "own");
        free(ptrs[i]);
        size_t n = small_size(&rng);
        void *p = malloc(n);
        check_block(p, n, owed_alignment(n), "own malloc");
        gen[i]++;
        fill_block(p, n, block_tag(i, gen[i]));
        ptrs[i] = p;
        sizes[i] = (uint32_t)n;
    }
    for (size_t i = 0; i < SLOTS; i++) {
        verify_block(ptrs[i], sizes[i], block_tag(i, gen[i]), "own");
        free(ptrs[i]);
    }
    free(gen);
    return NULL;
}

static double run_threads(unsigned n, void *(*fn)(void *), void *args, size_t arg_size)
{
    pthread_t tid[MAX_THREADS];
    pthread_barrier_init(&start_line, NULL, n + 1);
    for (unsigned i = 0; i < n; i++)
        if (pthread_create(&tid[i], NULL, fn, (char *)args + i * arg_size) != 0)
            die("pthread_create failed");
    pthread_barrier_wait(&start_line);
    double t0 = now_sec();
    for (unsigned i = 0; i < n; i++)
        pthread_join(tid[i], NULL);
    double t = now_sec() - t0;
    pthread_barrier_destroy(&start_line);
    return t;
}

static void bench_own(unsigned n, size_t steps)
{
    struct own_arg args[MAX_THREADS];
    char name[32];
    for (unsigned i = 0; i < n; i++)
        args[i] = (struct own_arg){ .steps = steps, .id = i };
    double t = run_threads(n, own_worker, args, sizeof args[0]);
    snprintf(name, sizeof name, "own/%u", n);
    emit(name, t * 1e9 / (double)(steps * n), "ns/step");
}

/* ---- pc: producer/consumer pairs over an SPSC ring ---- */

#define RING 1024 /* power of two */

struct slot {
    void *p;
    size_t size;
};

struct ring {
    _Alignas(64) _Atomic size_t head; /* next slot the producer writes */
    _Alignas(64) _Atomic size_t tail; /* next slot the consumer reads */
    _Alignas(64) struct slot slots[RING];
    size_t blocks;
    uint64_t seed;
};

static void backoff(unsigned *spins)
{
    if (++*spins > 64) {
        sched_yield();
        *spins = 0;
    }
}

static void *producer(void *argp)
{
    struct ring *r = argp;
    uint64_t rng = r->seed;
    size_t head = 0;
    pthread_barrier_wait(&start_line);
    for (size_t i = 0; i < r->blocks; i++) {
        size_t n = small_size(&rng);
        void *p = malloc(n);
        check_block(p, n, owed_alignment(n), "producer malloc");
        fill_block(p, n, block_tag(i, r->seed));
        unsigned spins = 0;
        while (head - atomic_load_explicit(&r->tail, memory_order_acquire) == RING)
            backoff(&spins);
        r->slots[head & (RING - 1)] = (struct slot){ p, n };
        atomic_store_explicit(&r->head, ++head, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *argp)
{
    struct ring *r = argp;
    size_t tail = 0;
    pthread_barrier_wait(&start_line);
    while (tail < r->blocks) {
        unsigned spins = 0;
        size_t head;
        while ((head = atomic_load_explicit(&r->head, memory_order_acquire)) == tail)
            backoff(&spins);
        for (; tail < head; tail++) {
            struct slot s = r->slots[tail & (RING - 1)];
            verify_block(s.p, s.size, block_tag(tail, r->seed), "consumer");
            free(s.p);
        }
        atomic_store_explicit(&r->tail, tail, memory_order_release);
    }
    return NULL;
}

struct pc_arg {
    struct ring *ring;
    int is_producer;
};

static void *pc_worker(void *argp)
{
    const struct pc_arg *a = argp;
    return a->is_producer ? producer(a->ring) : consumer(a->ring);
}

static void bench_pc(unsigned pairs, size_t blocks)
{
    struct ring *rings = aligned_alloc(64, pairs * sizeof *rings);
    struct pc_arg args[MAX_THREADS];
    char name[32];
    if (rings == NULL)
        die("out of memory for rings");
    for (unsigned i = 0; i < pairs; i++) {
        memset(&rings[i], 0, sizeof rings[i]);
        rings[i].blocks = blocks;
        rings[i].seed = 77 + i;
        args[2 * i] = (struct pc_arg){ &rings[i], 1 };
        args[2 * i + 1] = (struct pc_arg){ &rings[i], 0 };
    }
    double t = run_threads(2 * pairs, pc_worker, args, sizeof args[0]);
    free(rings);
    snprintf(name, sizeof name, "pc/%u", pairs);
    emit(name, t * 1e9 / (double)(blocks * pairs), "ns/block");
    snprintf(name, sizeof name, "pc/%u/throughput", pairs);
    emit(name, (double)(blocks * pairs) / t / 1e6, "Mblocks/s");
}

int main(int argc, char **argv)
{
    int quick = quick_divisor(argc, argv);
    size_t steps = ((size_t)2 << 20) / (size_t)quick;
    for (unsigned n = 1; n <= 4; n *= 2)
        bench_own(n, steps);
    for (unsigned pairs = 1; pairs <= 2; pairs++)
        bench_pc(pairs, steps);
    emit_libs();
    return 0;
}
