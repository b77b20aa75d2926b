/* init.c — process-wide start-up, run once by the first thread to reach a slow path (which may
 * be the dynamic loader's first malloc, before any constructor) or by our constructor. Nothing
 * here may allocate through malloc; a re-entrant malloc during start-up is served by jemalloc. */
#include "internal.h"
#include "snapshot.h"

PA_HIDDEN __thread int pa_tls_in_init __attribute__((tls_model("initial-exec")));

static pthread_mutex_t pa_init_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int     pa_init_done;


void pa_init(void)
{
    if (likely(atomic_load_explicit(&pa_init_done, memory_order_acquire)))
        return;
    pa_tls_in_init = 1;
    pthread_mutex_lock(&pa_init_lock);
    if (!atomic_load_explicit(&pa_init_done, memory_order_relaxed)) {
        pa_settings_read();
        pa_ledger_start(pa_large_none_yet());   /* before anything here can allocate */
        if (pthread_key_create(&pa_heap_key, pa_heap_thread_exit) != 0)
            pa_os_fatal("cannot create the thread-exit key");
        pa_fork_register();
        pa_large_init();
        pa_fork_guard_register();
        if (pa_config.stats)
            pa_stats_setup();
        pa_check_init();      /* after pa_stats_setup: the mode depends on tracking */
        atomic_store_explicit(&pa_init_done, 1, memory_order_release);
    }
    pthread_mutex_unlock(&pa_init_lock);
    pa_tls_in_init = 0;
}

/* Settings and fork handlers are in place before main even if nothing allocated yet. */
__attribute__((constructor)) static void pa_constructor(void)
{
    pa_init();
}
