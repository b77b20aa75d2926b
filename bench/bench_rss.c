/* bench_rss — resident memory left behind by a fragmented heap.
 *
 *   bench_rss [--trim] [--blocks N]
 *     Allocates N (default 4 Mi) small blocks (8-128 bytes, weighted small), frees 90% of them
 *     in random order (fixed seed) and reads VmRSS. With --trim, then calls malloc_trim(0) and
 *     reads VmRSS again; malloc_trim is never called without the flag.
 *     The bookkeeping arrays are mapped with mmap, outside the allocator under test; figures
 *     are reported both raw and above the process's resident size before the first block.
 */
#include "common.h"

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

static void *map_array(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        die("mmap of %zu bytes failed", bytes);
    memset(p, 0, bytes); /* resident before the baseline reading */
    return p;
}

/* Size of block i, derived from i so that it needs no array. */
static size_t size_of(size_t i)
{
    uint64_t s = i;
    double u = rng_unit(&s);
    return 8 + (size_t)(121.0 * u * u);
}

int main(int argc, char **argv)
{
    int trim = 0;
    size_t n = (size_t)4 << 20;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--trim") == 0)
            trim = 1;
        else if (strcmp(argv[i], "--blocks") == 0 && i + 1 < argc)
            n = strtoull(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--quick") != 0) {
            fprintf(stderr, "usage: %s [--trim] [--blocks N] [--quick]\n", argv[0]);
            return 64;
        }
    }
    void **ptrs = map_array(n * sizeof *ptrs);
    uint32_t *perm = map_array(n * sizeof *perm);
    uint64_t rng = 2024;
    for (size_t i = 0; i < n; i++)
        perm[i] = (uint32_t)i;
    for (size_t i = n - 1; i > 0; i--) {
        size_t j = (size_t)rng_below(&rng, i + 1);
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    long base = proc_status_kb("VmRSS");

    double t0 = now_sec();
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        size_t sz = size_of(i);
        void *p = malloc(sz);
        check_block(p, sz, owed_alignment(sz), "malloc");
        fill_block(p, sz, block_tag(i, 1));
        ptrs[i] = p;
        bytes += sz;
    }
    long full = proc_status_kb("VmRSS");
    size_t nfree = n - n / 10, kept_bytes = bytes;
    for (size_t k = 0; k < nfree; k++) {
        size_t i = perm[k];
        size_t sz = size_of(i);
        verify_block(ptrs[i], sz, block_tag(i, 1), "free");
        free(ptrs[i]);
        ptrs[i] = NULL;
        kept_bytes -= sz;
    }
    double t = now_sec() - t0;
    long after = proc_status_kb("VmRSS");
    long trimmed = -1;
    if (trim) {
        malloc_trim(0);
        trimmed = proc_status_kb("VmRSS");
    }
    for (size_t i = 0; i < n; i++) /* the survivors must be intact */
        if (ptrs[i] != NULL)
            verify_block(ptrs[i], size_of(i), block_tag(i, 1), "survivor");

    emit("rss/base", (double)base / 1024.0, "MiB");
    emit("rss/full", (double)(full - base) / 1024.0, "MiB");
    emit("rss/after_free", (double)(after - base) / 1024.0, "MiB");
    emit("rss/after_free_raw", (double)after / 1024.0, "MiB");
    if (trim)
        emit("rss/after_trim", (double)(trimmed - base) / 1024.0, "MiB");
    emit("rss/live_kept", (double)kept_bytes / 1048576.0, "MiB");
    emit("rss/time", t * 1e9 / (double)(n + nfree), "ns/op");
    for (size_t i = 0; i < n; i++)
        free(ptrs[i]);
    emit_libs();
    return 0;
}
