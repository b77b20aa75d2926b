/* fork.c — fork safety: every allocator lock is taken before fork and released (or, in the
 * child, re-created) after, so the child can allocate and free whatever the parent's threads
 * were doing. Lock order: heaps, then each heap's spare list, then arenas (the order the free
 * paths and malloc_trim take them in), then the large path's ledger (a leaf). */
#include <gnu/libc-version.h>

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
    pa_ledger_fork_prepare();
    pa_tls_in_fork = true;
}

static void parent(void)
{
    pa_tls_in_fork = false;
    pa_ledger_fork_parent();
    pa_arena_fork_parent();
    pa_heap_fork_parent();
}

static void child(void)
{
    pa_tls_in_fork = false;
    pa_large_fork_child();
    pa_ledger_fork_child();
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

/* The registration guard. glibc 2.36 and later run each fork handler with their atfork lock
 * released and take it again between them, and their __register_atfork holds that lock while
 * it grows the list of handlers with malloc (past 48 of them, and at each growth by half). A
 * thread registering while another forks could take the atfork lock while the forking thread
 * holds jemalloc's locks (from jemalloc's prepare handler to its parent handler: ours run
 * inside that) and then wait in malloc for them, while the forking thread waits for the atfork
 * lock. So every registration forwarded by atfork.c holds guard_lock, and a third pair of
 * handlers, registered right after jemalloc's, holds it from before jemalloc's prepare handler
 * to after its parent handler: a registration never overlaps the window in which the forking
 * thread holds an allocator lock. Lock order: pa_init_lock (held while pa_init registers),
 * then guard_lock, then glibc's atfork lock and the allocators' locks, which the forking
 * thread takes in either order only while it holds guard_lock.
 *
 * glibc 2.28 to 2.35 hold their atfork lock through the whole fork, so a registration never
 * runs inside it; there the guard would deadlock (the forking thread, holding that lock,
 * would wait for guard_lock, held by a registration waiting for that lock), and it stays off,
 * as it does for any version string it cannot read. Before 2.28 fork ran the handlers without
 * the lock a registration takes, and nothing waited on it: no guard is needed either. */
static bool            guard_on;        /* set once, by pa_fork_guard_register */
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;
static __thread bool   tls_guarding;    /* this thread forks and holds guard_lock (defensive:
                                         * only our handlers and jemalloc's run meanwhile) */
static __thread bool   tls_guard_owed;  /* register the guard once the call in progress is in */
static int             init_forwards;   /* registrations forwarded from inside pa_init: ours,
                                         * then jemalloc's unless its own call started pa_init */

bool pa_fork_guard_needed(const char *glibc_version)
{
    const char *v = glibc_version, *start = v;
    uint64_t major = pa_os_scan_dec(&v);
    if (v == start || *v++ != '.')
        return false;
    start = v;
    uint64_t minor = pa_os_scan_dec(&v);
    return v != start && (major > 2 || (major == 2 && minor >= 36));
}

static void guard_prepare(void)
{
    pthread_mutex_lock(&guard_lock);
    tls_guarding = true;
}

static void guard_parent(void)
{
    tls_guarding = false;
    pthread_mutex_unlock(&guard_lock);
}

static void guard_child(void)
{
    tls_guarding = false;
    guard_lock = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;   /* the other threads are gone */
}

static void guard_register(void)
{
    if (pthread_atfork(guard_prepare, guard_parent, guard_child) != 0)
        pa_os_fatal("cannot register fork handlers");
}

/* Called by pa_init once jemalloc started. One forward from inside pa_init means jemalloc's
 * registration is the call that started it (a large request came first, as in every C++
 * program: libstdc++'s emergency pool), still to go through (atfork.c); none, that calls do not
 * come through atfork.c at all (the unit tests' archive), and jemalloc's is in. */
void pa_fork_guard_register(void)
{
    guard_on = pa_fork_guard_needed(gnu_get_libc_version());
    if (!guard_on)
        return;
    if (init_forwards == 1)
        tls_guard_owed = true;
    else
        guard_register();
}

bool pa_fork_forward_begin(void)
{
    if (pa_tls_in_init)
        init_forwards++;   /* only the thread that runs pa_init gets here with it set */
    if (!guard_on || tls_guarding)
        return false;
    pthread_mutex_lock(&guard_lock);
    return true;
}

void pa_fork_forward_end(bool locked)
{
    if (locked)
        pthread_mutex_unlock(&guard_lock);
    if (tls_guard_owed && !pa_tls_in_init) {
        tls_guard_owed = false;
        guard_register();
    }
}
