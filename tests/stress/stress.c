/* stress.c — the multi-threaded stress test, run under LD_PRELOAD=libpyarena.so: worker threads
 * churn random sizes and free each other's blocks through a shared exchange array, exit and are
 * replaced continually, now and then publishing a burst of new blocks and going idle while the
 * others free them (the sweeps of an idle owner's pools: heap.c), while the main thread forks;
 * the child frees blocks the parent's threads allocated, allocates, runs a thread and exits.
 * Every block carries a pattern made of its address and size, checked before it is freed.
 * Usage: stress [seconds] (default 60). */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SEED        0x5eed2024u
#define NWORKERS    4          /* worker threads alive at any time */
#define NEXCHANGE   4096       /* slots of the shared exchange array */
#define NLOCAL      256        /* blocks a worker keeps for itself */
#define MAX_SIZE    2000
#define CHILD_WAIT  20         /* seconds a fork child may take before it counts as hung */
#define BURST       512        /* blocks a worker publishes before a nap... */
#define NAP_NS      3000000    /* ...of 3 ms, longer than an owner may stay idle (heap.c) */

/* A block travels as one word: address << 16 | size (user addresses have 47 bits, sizes < 2^16). */
typedef uint64_t packed;
static inline packed pack(void *p, size_t n) { return (uint64_t)(uintptr_t)p << 16 | n; }
static inline void *addr_of(packed b)        { return (void *)(uintptr_t)(b >> 16); }
static inline size_t size_of(packed b)       { return (size_t)(b & 0xffff); }

static _Atomic packed   exchange[NEXCHANGE];
static _Atomic uint64_t total_ops, pattern_errors, other_errors, threads_started, naps;
static _Atomic int      stop;

typedef struct rng { uint64_t s; } rng;

static uint64_t next(rng *r)        /* xorshift64* */
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1Du;
}

/* Mostly small: 70 % up to 64 bytes, 20 % up to 512, 10 % up to MAX_SIZE. */
static size_t random_size(rng *r)
{
    uint64_t x = next(r);
    unsigned k = (unsigned)(x % 10);
    x >>= 8;
    if (k < 7)
        return 1 + x % 64;
    if (k < 9)
        return 1 + x % 512;
    return 1 + x % MAX_SIZE;
}

static inline uint64_t pattern_word(const void *p, size_t n, size_t k)
{
    return ((uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15u) ^ ((uint64_t)n << 48) ^ k;
}

static void fill(void *p, size_t n)
{
    unsigned char *c = p;
    size_t k = 0;
    for (; k < n / 8; k++) {
        uint64_t w = pattern_word(p, n, k);
        memcpy(c + 8 * k, &w, 8);
    }
    if (n % 8) {
        uint64_t w = pattern_word(p, n, k);
        memcpy(c + 8 * k, &w, n % 8);
    }
}

static bool intact(const void *p, size_t n)
{
    const unsigned char *c = p;
    size_t k = 0;
    for (; k < n / 8; k++) {
        uint64_t w;
        memcpy(&w, c + 8 * k, 8);
        if (w != pattern_word(p, n, k))
            return false;
    }
    if (n % 8) {
        uint64_t w = pattern_word(p, n, k);
        if (memcmp(c + 8 * k, &w, n % 8) != 0)
            return false;
    }
    return true;
}

static void report(const char *what, const void *p, size_t n)
{
    if (atomic_fetch_add(&pattern_errors, 1) < 10)
        fprintf(stderr, "stress: %s: pattern of block %p (%zu bytes) damaged\n", what, p, n);
}

static void error(const char *what)
{
    if (atomic_fetch_add(&other_errors, 1) < 10)
        fprintf(stderr, "stress: %s\n", what);
}

static packed new_block(rng *r)
{
    size_t n = random_size(r);
    void *p = malloc(n);
    if (p == NULL) {
        error("malloc returned NULL");
        return 0;
    }
    fill(p, n);
    return pack(p, n);
}

static void drop(packed b, const char *what)
{
    if (b == 0)
        return;
    if (!intact(addr_of(b), size_of(b)))
        report(what, addr_of(b), size_of(b));
    free(addr_of(b));
}

/* realloc keeps the old prefix; the block is then refilled for its new address and size. */
static packed resize(packed b, rng *r)
{
    void *p = addr_of(b);
    size_t n = size_of(b), m = random_size(r);
    if (!intact(p, n))
        report("before realloc", p, n);
    unsigned char *q = realloc(p, m);
    if (q == NULL) {
        error("realloc returned NULL");
        return 0;
    }
    size_t keep = n < m ? n : m;
    unsigned char want[MAX_SIZE + 8];
    for (size_t k = 0; k * 8 < keep; k++) {
        uint64_t w = pattern_word(p, n, k);
        memcpy(want + 8 * k, &w, 8);
    }
    if (memcmp(q, want, keep) != 0)
        report("prefix after realloc", q, keep);
    fill(q, m);
    return pack(q, m);
}

/* ---- workers: each runs a random number of operations, then exits and is replaced */

typedef struct worker {
    pthread_t tid;
    _Atomic int done;
    uint64_t seed;
    bool running;
} worker;

/* Runs up to ops random operations on local[] and the exchange array; returns how many ran. */
static uint64_t churn(rng *r, packed *local, size_t nlocal, uint64_t ops)
{
    uint64_t i = 0;
    for (; i < ops && !atomic_load_explicit(&stop, memory_order_relaxed); i++) {
        uint64_t x = next(r);
        size_t j = (size_t)(x >> 32) % nlocal;
        switch (x % 8) {
        case 0: case 1: case 2: case 3:          /* replace a local block */
            drop(local[j], "local free");
            local[j] = new_block(r);
            break;
        case 4: case 5: {                        /* swap a block through the exchange array */
            packed mine = local[j] ? local[j] : new_block(r);
            packed theirs = atomic_exchange(&exchange[(x >> 16) % NEXCHANGE], mine);
            local[j] = 0;
            drop(theirs, "cross-thread free");
            break;
        }
        case 6:
            if (local[j])
                local[j] = resize(local[j], r);
            break;
        case 7:                                  /* take one from the exchange and keep it */
            drop(local[j], "local free");
            local[j] = atomic_exchange(&exchange[(x >> 16) % NEXCHANGE], 0);
            break;
        }
    }
    return i;
}

/* A burst of new blocks into the exchange array (the blocks there freed), then a nap: the
 * others free the burst while this thread, its owner, is idle. */
static void burst_and_nap(rng *r)
{
    for (int i = 0; i < BURST; i++)
        drop(atomic_exchange(&exchange[next(r) % NEXCHANGE], new_block(r)), "cross-thread free");
    struct timespec nap = { 0, NAP_NS };
    nanosleep(&nap, NULL);
    atomic_fetch_add(&naps, 1);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    rng r = { w->seed };
    packed local[NLOCAL] = { 0 };
    uint64_t ops = 0, want = 20000 + next(&r) % 200000;
    while (ops < want && !atomic_load_explicit(&stop, memory_order_relaxed)) {
        ops += churn(&r, local, NLOCAL, 20000);
        if (next(&r) % 2)
            burst_and_nap(&r);
    }
    /* leave some blocks behind for other threads (and the heap's next owner) to free */
    for (size_t j = 0; j < NLOCAL; j++) {
        if (j % 2 == 0)
            drop(atomic_exchange(&exchange[next(&r) % NEXCHANGE], local[j]), "cross-thread free");
        else
            drop(local[j], "local free at exit");
    }
    atomic_fetch_add(&total_ops, ops);
    atomic_store(&w->done, 1);
    return NULL;
}

static uint64_t thread_seq;

static bool start_worker(worker *w)
{
    w->seed = SEED ^ (++thread_seq * 0x9E3779B97F4A7C15u);
    atomic_store(&w->done, 0);
    int rc = pthread_create(&w->tid, NULL, worker_main, w);
    if (rc != 0) {
        errno = rc;
        perror("stress: pthread_create");
        error("cannot start a worker");
        return false;
    }
    w->running = true;
    atomic_fetch_add(&threads_started, 1);
    return true;
}

/* ---- fork: the child takes blocks from the exchange array, allocates, runs a thread */

static void *child_thread(void *arg)
{
    rng r = { SEED ^ 0xc41d };
    packed *handed = arg;
    packed local[64] = { 0 };
    for (int i = 0; i < 64; i++)
        drop(handed[i], "free in child thread");
    churn(&r, local, 64, 20000);
    for (int i = 0; i < 64; i++)
        drop(local[i], "child thread free");
    return NULL;
}

static int child_main(uint64_t seq)
{
    rng r = { SEED ^ seq };
    static packed keep[256], handed[64];
    size_t taken = 0;
    atomic_store(&pattern_errors, 0);            /* count the child's own errors */
    atomic_store(&other_errors, 0);
    /* At the fork every slot held a whole block (exchanges are atomic): free half of them. */
    for (size_t i = seq % 2; i < NEXCHANGE; i += 2) {
        packed b = atomic_exchange(&exchange[i], 0);
        if (b && taken < 64)
            handed[taken++] = b;      /* freed by the child's thread */
        else
            drop(b, "parent's block freed in the child");
    }
    for (size_t i = 0; i < 256; i++)
        keep[i] = new_block(&r);
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, handed) != 0)
        error("child: cannot start a thread");
    else
        pthread_join(t, NULL);
    for (size_t i = 0; i < 256; i++)
        drop(keep[i], "child's own block");
    for (size_t i = 0; i < NEXCHANGE; i++)   /* the rest of the parent's blocks */
        drop(atomic_exchange(&exchange[i], 0), "parent's block freed in the child");
    malloc_trim(0);
    return atomic_load(&pattern_errors) + atomic_load(&other_errors) ? 1 : 0;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void do_fork(uint64_t seq)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("stress: fork");
        error("fork failed");
        return;
    }
    if (pid == 0)
        _exit(child_main(seq));
    double deadline = now() + CHILD_WAIT;
    int status;
    pid_t w;
    while ((w = waitpid(pid, &status, WNOHANG)) == 0 && now() < deadline)
        usleep(1000);
    if (w == 0) {
        fprintf(stderr, "stress: fork child %d hung for %d s (deadlock?); killing it\n", (int)pid,
                CHILD_WAIT);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        error("fork child hung");
    } else if (w < 0) {
        perror("stress: waitpid");
        error("waitpid failed");
    } else if (WIFSIGNALED(status)) {
        fprintf(stderr, "stress: fork child killed by signal %d\n", WTERMSIG(status));
        error("fork child crashed");
    } else if (WEXITSTATUS(status) != 0) {
        fprintf(stderr, "stress: fork child exited with status %d\n", WEXITSTATUS(status));
        error("fork child failed");
    }
}

int main(int argc, char **argv)
{
    double duration = argc > 1 ? atof(argv[1]) : 60;
    if (duration <= 0) {
        fprintf(stderr, "usage: stress [seconds]\n");
        return 2;
    }
    static worker workers[NWORKERS];
    rng r = { SEED };
    packed mine[128] = { 0 };
    uint64_t forks = 0, main_ops = 0;
    double start = now(), end = start + duration, next_fork = start + 0.2;

    for (int i = 0; i < NWORKERS; i++)
        start_worker(&workers[i]);
    while (now() < end) {
        for (int i = 0; i < NWORKERS; i++)      /* replace workers that finished */
            if (workers[i].running && atomic_load(&workers[i].done)) {
                pthread_join(workers[i].tid, NULL);
                workers[i].running = false;
                start_worker(&workers[i]);
            }
        main_ops += churn(&r, mine, 128, 2000); /* the forking thread allocates too */
        if (now() >= next_fork) {
            do_fork(++forks);
            malloc_trim(0);                     /* purges pools while the workers run */
            next_fork = now() + 0.1 + (double)(next(&r) % 300) / 1000;
        }
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < NWORKERS; i++)
        if (workers[i].running)
            pthread_join(workers[i].tid, NULL);
    for (size_t i = 0; i < 128; i++)
        drop(mine[i], "main's block at the end");
    for (size_t i = 0; i < NEXCHANGE; i++)
        drop(atomic_exchange(&exchange[i], 0), "exchange block at the end");
    uint64_t ops = atomic_load(&total_ops) + main_ops;
    double secs = now() - start;
    printf("stress: %" PRIu64 " ops, %" PRIu64 " threads started, %" PRIu64 " forks, %" PRIu64
           " pattern errors\n", ops, atomic_load(&threads_started), forks,
           atomic_load(&pattern_errors));
    printf("stress: %.0f ops/s over %.1f s, %" PRIu64 " other errors\n", (double)ops / secs, secs,
           atomic_load(&other_errors));
    printf("stress: %" PRIu64 " bursts of %d blocks followed by a nap\n", atomic_load(&naps),
           BURST);
    return atomic_load(&pattern_errors) || atomic_load(&other_errors) ? 1 : 0;
}
