/* lock.c — the one lock of the handle library, CPython's GIL in spirit: every handle call of a
 * multi-threaded program happens under it, which is what lets refcounts and the collector's
 * lists be plain memory with no atomics. */
#include "hobj.h"

#include <pthread.h>

static pthread_mutex_t pa_lock_mutex = PTHREAD_MUTEX_INITIALIZER;

PA_HANDLE_API void pa_lock(void)
{
    pthread_mutex_lock(&pa_lock_mutex);
}

PA_HANDLE_API void pa_unlock(void)
{
    pthread_mutex_unlock(&pa_lock_mutex);
}
