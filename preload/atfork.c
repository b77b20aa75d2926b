/* atfork.c — glibc's __register_atfork, the function behind pthread_atfork, and pthread_atfork
 * itself, interposed so that pyarena's fork handlers and jemalloc's are registered before any
 * other library's.
 *
 * glibc runs prepare handlers in the reverse order of their registration and the parent and
 * child handlers in that order. With ours and jemalloc's first, every other library's prepare
 * handler runs before any allocator lock is taken, and its parent or child handler after every
 * one is released (or, in the child, made anew): such handlers may call malloc for any size,
 * as glibc's own malloc allows (it locks its arenas after the prepare handlers and unlocks
 * them before the others). Registered in the order libraries happened to start, a library
 * whose constructor ran before pyarena's start-up had its handlers run inside the window in
 * which jemalloc's prepare handler holds its locks, and a request for more than 512 bytes
 * there waited forever (pyarena's own pools let the forking thread through: fork.c).
 *
 * A library's pthread_atfork is either a stub linked into it from libc_nonshared.a, which
 * calls __register_atfork through the dynamic symbol table, or (a weak or versioned reference,
 * as in libtcmalloc_minimal) glibc's exported compatibility pthread_atfork, which calls it
 * inside libc: both names are interposed, and the preload comes first in that table. glibc's
 * own registrations, made internally, do not come here.
 *
 * Each forwarded registration holds fork.c's registration guard: glibc grows its list of
 * handlers with malloc while it holds its atfork lock, which a fork on another thread drops and
 * takes again around each handler it runs, jemalloc's included. */
#define _GNU_SOURCE
#include <dlfcn.h>

#include "internal.h"

typedef int pa_register_fn(void (*)(void), void (*)(void), void (*)(void), void *);

PA_EXPORT int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void),
                                void *dso_handle);

PA_EXPORT int __register_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void),
                                void *dso_handle)
{
    static pa_register_fn *libc_register;   /* glibc's, found on the first call */
    /* pa_init registers ours, then starts jemalloc, which registers its own: both come back
     * here with pa_tls_in_init set and go straight through. Once done it returns at once. */
    if (!pa_tls_in_init)
        pa_init();
    pa_register_fn *next = __atomic_load_n(&libc_register, __ATOMIC_ACQUIRE);
    if (next == NULL) {
        /* dlsym allocates only to report an error */
        next = (pa_register_fn *)dlsym(RTLD_NEXT, "__register_atfork");
        if (next == NULL)
            pa_os_fatal("cannot find glibc's __register_atfork");
        __atomic_store_n(&libc_register, next, __ATOMIC_RELEASE);
    }
    bool locked = pa_fork_forward_begin();
    int rc = next(prepare, parent, child, dso_handle);
    pa_fork_forward_end(locked);
    return rc;
}

/* Handlers registered through it stay registered however the caller is unloaded, as with
 * glibc's (which passes its own handle); ours, the preload's, is never unloaded either. */
extern void *__dso_handle;

PA_EXPORT int pthread_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    return __register_atfork(prepare, parent, child, &__dso_handle);
}
