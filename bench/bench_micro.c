/* bench_micro — single-thread microbenchmarks of the malloc family.
 *
 *   bench_micro pairs   [--quick]   malloc/free of one size at a time, batches freed in LIFO,
 *                                   FIFO and random order; ns per malloc+free pair (best of
 *                                   three slices of each cell)
 *   bench_micro pairs --cell ORDER/SIZE [--quick]
 *                                   one cell only (e.g. lifo/32), timed longer (best of
 *                                   CELL_ONLY_SLICES slices of CELL_ONLY_SECONDS in all), for
 *                                   the runner's comparisons of pyarena's settings
 *   bench_micro churn   [--quick]   a working set of blocks with random sizes 8-512 (weighted
 *                                   small), one block replaced per step; ns per step and the
 *                                   process's peak resident memory (VmHWM)
 *   bench_micro aligned [--quick]   posix_memalign and aligned_alloc with alignments 16-4096;
 *                                   ns per pair; a misaligned block is a failure
 */
#include "common.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum order { LIFO, FIFO, RANDOM };
static const char *const order_name[] = { "lifo", "fifo", "random" };

static const size_t pair_sizes[] = { 16, 32, 48, 64, 128, 256, 512, 1024, 4096, 65536 };

/* Blocks live at once in one batch: 4096, or fewer so that a batch holds at most 4 MiB. */
static size_t batch_of(size_t size)
{
    size_t k = ((size_t)4 << 20) / size;
    return k < 4096 ? k : 4096;
}

/* Each (size, order) cell is timed in SLICES slices; a slice repeats whole batches until its
 * share of CELL_SECONDS has passed (and at least MIN_ROUNDS batches), so the large sizes,
 * whose pairs may cost page faults, do not dominate the run time. The figure reported is the
 * time per pair of the fastest slice, which rejects short bursts of interference from other
 * processes on a shared machine. */
#define CELL_SECONDS 0.15
#define SLICES       3
#define MIN_ROUNDS   2
#define CELL_ONLY_SECONDS 0.6
#define CELL_ONLY_SLICES  6

static void one_round(void **ptrs, const uint32_t *perm, size_t k, size_t size, enum order ord,
                      uint64_t round)
{
    for (size_t i = 0; i < k; i++) {
        void *p = malloc(size);
        check_block(p, size, 16, "malloc");
        fill_block(p, size, block_tag(i, round));
        ptrs[i] = p;
    }
    for (size_t j = 0; j < k; j++) {
        size_t i = ord == LIFO ? k - 1 - j : ord == FIFO ? j : perm[j];
        verify_block(ptrs[i], size, block_tag(i, round), "pairs");
        free(ptrs[i]);
    }
}

/* The cell named by --cell ORDER/SIZE: *size and *order set, 1; 0 if there is no --cell. */
static int cell_arg(int argc, char **argv, size_t *size, int *order)
{
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--cell") != 0)
            continue;
        const char *arg = argv[i + 1], *slash = strchr(arg, '/');
        char *end;
        if (slash != NULL)
            for (int o = LIFO; o <= RANDOM; o++)
                if (strlen(order_name[o]) == (size_t)(slash - arg)
                    && strncmp(arg, order_name[o], (size_t)(slash - arg)) == 0) {
                    *order = o;
                    *size = strtoull(slash + 1, &end, 10);
                    for (size_t s = 0; s < sizeof pair_sizes / sizeof pair_sizes[0]; s++)
                        if (*end == '\0' && pair_sizes[s] == *size)
                            return 1;
                }
        die("--cell %s: expected ORDER/SIZE, ORDER lifo, fifo or random, SIZE one of the pair "
            "sizes (16 ... 65536)", arg);
    }
    return 0;
}

static void run_pairs(int quick, int argc, char **argv)
{
    size_t only_size = 0;
    int only_order = LIFO, only = cell_arg(argc, argv, &only_size, &only_order);
    double cell_seconds = only ? CELL_ONLY_SECONDS : CELL_SECONDS;
    int slices = only ? CELL_ONLY_SLICES : SLICES;
    void **ptrs = malloc(4096 * sizeof *ptrs);
    uint32_t *perm = malloc(4096 * sizeof *perm);
    if (ptrs == NULL || perm == NULL)
        die("out of memory for bookkeeping");
    for (size_t s = 0; s < sizeof pair_sizes / sizeof pair_sizes[0]; s++) {
        size_t size = pair_sizes[s], k = batch_of(size);
        if (only && size != only_size)
            continue;
        uint64_t rng = 42 + size;
        for (size_t i = 0; i < k; i++)
            perm[i] = (uint32_t)i;
        for (size_t i = k - 1; i > 0; i--) { /* Fisher-Yates, fixed seed */
            size_t j = (size_t)rng_below(&rng, i + 1);
            uint32_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (int o = LIFO; o <= RANDOM; o++) {
            char name[64];
            if (only && o != only_order)
                continue;
            one_round(ptrs, perm, k, size, (enum order)o, 0); /* warm-up */
            double best = 0;
            uint64_t round = 0;
            for (int slice = 0; slice < slices; slice++) {
                size_t rounds = 0;
                double t0 = now_sec(), t;
                do {
                    one_round(ptrs, perm, k, size, (enum order)o, ++round);
                    rounds++;
                } while ((t = now_sec() - t0) < cell_seconds / slices / quick || rounds < MIN_ROUNDS);
                double per_pair = t * 1e9 / (double)(rounds * k);
                if (slice == 0 || per_pair < best)
                    best = per_pair;
            }
            snprintf(name, sizeof name, "pairs/%s/%zu", order_name[o], size);
            emit(name, best, "ns/pair");
        }
    }
    free(perm);
    free(ptrs);
}

static void run_churn(int quick)
{
    size_t slots = 100000, steps = (size_t)6 << 20;
    long base = proc_status_kb("VmRSS");   /* the process and allocator before the heap grows */
    if (quick > 1) {
        slots /= 2;
        steps /= (size_t)quick;
    }
    void **ptrs = malloc(slots * sizeof *ptrs);
    uint32_t *sizes = malloc(slots * sizeof *sizes);
    uint64_t *tags = malloc(slots * sizeof *tags);
    if (ptrs == NULL || sizes == NULL || tags == NULL)
        die("out of memory for bookkeeping");
    uint64_t rng = 12345;
    size_t live = 0, live_max = 0;
    for (size_t i = 0; i < slots; i++) {
        size_t n = small_size(&rng);
        ptrs[i] = malloc(n);
        check_block(ptrs[i], n, owed_alignment(n), "churn malloc");
        sizes[i] = (uint32_t)n;
        tags[i] = block_tag(i, 0);
        fill_block(ptrs[i], n, tags[i]);
        live += n;
    }
    live_max = live;
    double t0 = now_sec();
    for (size_t step = 1; step <= steps; step++) {
        size_t i = (size_t)rng_below(&rng, slots);
        verify_block(ptrs[i], sizes[i], tags[i], "churn");
        free(ptrs[i]);
        live -= sizes[i];
        size_t n = small_size(&rng);
        void *p = malloc(n);
        check_block(p, n, owed_alignment(n), "churn malloc");
        tags[i] = block_tag(i, step);
        fill_block(p, n, tags[i]);
        ptrs[i] = p;
        sizes[i] = (uint32_t)n;
        live += n;
        if (live > live_max)
            live_max = live;
    }
    double t = now_sec() - t0;
    long hwm = proc_status_kb("VmHWM");
    for (size_t i = 0; i < slots; i++) {
        verify_block(ptrs[i], sizes[i], tags[i], "churn");
        free(ptrs[i]);
    }
    emit("churn/time", t * 1e9 / (double)steps, "ns/step");
    emit("churn/peak_rss", (double)hwm / 1024.0, "MiB");
    emit("churn/base_rss", (double)base / 1024.0, "MiB");
    emit("churn/heap_rss", (double)(hwm - base) / 1024.0, "MiB");
    emit("churn/live_max", (double)live_max / 1048576.0, "MiB");
    free(tags);
    free(sizes);
    free(ptrs);
}

static void run_aligned(int quick)
{
    enum { K = 16 };
    static const size_t mults[] = { 1, 2, 3, 8 };
    void *ptrs[K];
    size_t count = 0, rep = 0;
    double t0 = now_sec(), t;
    do {
        rep++;
        for (size_t align = 16; align <= 4096; align *= 2)
            for (size_t m = 0; m < sizeof mults / sizeof mults[0]; m++) {
                size_t size = align * mults[m];
                for (size_t i = 0; i < K; i++) {
                    void *p = NULL;
                    const char *fn;
                    if (i & 1) {
                        fn = "aligned_alloc";
                        p = aligned_alloc(align, size);
                    } else {
                        fn = "posix_memalign";
                        if (posix_memalign(&p, align, size) != 0)
                            p = NULL;
                    }
                    if (p == NULL)
                        die("%s(%zu, %zu) failed", fn, align, size);
                    if ((uintptr_t)p & (align - 1))
                        die("%s(alignment %zu, size %zu) returned %p, which is only %zu-byte "
                            "aligned", fn, align, size, p, (size_t)((uintptr_t)p & -(uintptr_t)p));
                    fill_block(p, size, block_tag(i, rep));
                    ptrs[i] = p;
                }
                for (size_t i = 0; i < K; i++) {
                    verify_block(ptrs[K - 1 - i], size, block_tag(K - 1 - i, rep), "aligned");
                    free(ptrs[K - 1 - i]);
                }
                count += K;
            }
    } while ((t = now_sec() - t0) < 4 * CELL_SECONDS / quick || rep < MIN_ROUNDS);
    emit("aligned/time", t * 1e9 / (double)count, "ns/pair");
}

int main(int argc, char **argv)
{
    int quick = quick_divisor(argc, argv);
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "pairs") == 0)
        run_pairs(quick, argc, argv);
    else if (strcmp(mode, "churn") == 0)
        run_churn(quick);
    else if (strcmp(mode, "aligned") == 0)
        run_aligned(quick);
    else {
        fprintf(stderr, "usage: %s pairs [--cell ORDER/SIZE]|churn|aligned [--quick]\n", argv[0]);
        return 64;
    }
    emit_libs();
    return 0;
}
