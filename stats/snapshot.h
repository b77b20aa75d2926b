/* snapshot.h — a consistent-enough picture of the heap, gathered without allocating: per-class
 * pools, blocks and allocation counts from the arena headers and pool descriptors; remote-free
 * counts, the thread caches' allocation counts and the blocks they hold from every thread's
 * heap. The report (stats/report.c), mallinfo2 and the tests read
 * it. */
#ifndef PA_SNAPSHOT_H
#define PA_SNAPSHOT_H

#include "internal.h"

typedef struct pa_class_snapshot {
    size_t size;       /* block size */
    size_t pools;      /* pools of this class in use (ATTACHED or FULL) */
    size_t in_use;     /* blocks handed out and not freed */
    size_t free;       /* free blocks in those pools (local lists, remote stacks, threads'
                          caches) */
    size_t allocs;     /* allocations since start */
    size_t frees;      /* frees since start (allocs - in_use) */
} pa_class_snapshot;

typedef struct pa_snapshot {
    pa_class_snapshot cls[PA_NCLASSES];
    pa_arena_counts   arenas;
    size_t            arena_bytes;     /* bytes of arenas held now (in use and cached) */
    size_t            pools_in_use, pools_free;
    size_t            block_bytes;     /* bytes in blocks handed out */
    size_t            free_bytes;      /* bytes in free blocks of pools in use */
    size_t            waste;           /* stats on: class size minus request, live blocks */
    size_t            threads;         /* heaps ever made: threads that allocated at once */
    size_t            remote_frees;    /* cross-thread frees, taken back or pending */
} pa_snapshot;

PA_HIDDEN void pa_snapshot_take(pa_snapshot *s);

/* ---- report.c: the report to fd (PYARENA_STATS_TEXT or _JSON); 0, or -1 with errno */
PA_HIDDEN int  pa_stats_write(int fd, int format);
PA_HIDDEN int  pa_stats_add_section(const char *key, void (*fn)(int, int, void *), void *arg);

/* ---- dump.c: start-up when PYARENA_STATS is set */
PA_HIDDEN void pa_stats_setup(void);

#endif
