/* fork.c — fork safety: every allocator lock is taken before fork and released (or, in the
 * child, re-created) after, so the child can allocate and free whatever the parent's threads
 * were doing. Lock order: heaps, then each heap's spare list, then arenas (the order the free
 * paths and malloc_trim take them in). */
#include "internal.h"

static void prepare(void)
{
    pa_large_fork_prepare();
    pa_heap_fork_prepare();
    pa_arena_fork_prepare();
}

static void parent(void)
{
    pa_arena_fork_parent();
    pa_heap_fork_parent();
    pa_large_fork_done();
}

static void child(void)
{
    pa_arena_fork_child();
    pa_heap_fork_child();
    pa_large_fork_done();
}

/* After jemalloc's (pa_init initialises it first), so that glibc runs this prepare handler
 * before jemalloc's and these parent and child handlers after jemalloc's: the pools' locks are
 * taken before jemalloc's and released after, and the large path knows a fork is under way
 * for as long as jemalloc's locks are held, whichever handlers of other libraries run in
 * between (pa_large_decay_tick). */
void pa_fork_register(void)
{
    if (pthread_atfork(prepare, parent, child) != 0)
        pa_os_fatal("cannot register fork handlers");
}
