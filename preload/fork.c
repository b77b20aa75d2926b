/* fork.c — fork safety: every allocator lock is taken before fork and released (or, in the
 * child, re-created) after, so the child can allocate and free whatever the parent's threads
 * were doing. Lock order: heaps, then each heap's spare list, then arenas (the order the free
 * paths and malloc_trim take them in). */
#include "internal.h"

/* Set from the end of our prepare handler to the start of our parent or child handler, in the
 * forking thread, which then holds every lock of the pools (and jemalloc's: its handlers are
 * registered right after ours, pa_init). glibc lets fork handlers malloc; other libraries'
 * handlers run outside that window, ours and jemalloc's being registered before theirs
 * (atfork.c), but should the forking thread allocate inside it, this flag has it go through
 * the locks it holds itself (the other threads wait on them, so it is alone), and the large
 * path's decay tick stays off (its mallctl would wait for jemalloc's ctl lock). */
PA_HIDDEN __thread bool pa_tls_in_fork __attribute__((tls_model("initial-exec")));

static void prepare(void)
{
    pa_heap_fork_prepare();
    pa_arena_fork_prepare();
    pa_tls_in_fork = true;
}

static void parent(void)
{
    pa_tls_in_fork = false;
    pa_arena_fork_parent();
    pa_heap_fork_parent();
}

static void child(void)
{
    pa_tls_in_fork = false;
    pa_arena_fork_child();
    pa_heap_fork_child();
}

/* Registered just before jemalloc's (pa_init initialises jemalloc right after; when a large
 * request came first, jemalloc's registration calls pa_init before it goes through: atfork.c),
 * and both before any other library's, so that glibc runs jemalloc's prepare handler just
 * before ours and its parent and child handlers just after ours, and every other library's
 * outside them. */
void pa_fork_register(void)
{
    if (pthread_atfork(prepare, parent, child) != 0)
        pa_os_fatal("cannot register fork handlers");
}
