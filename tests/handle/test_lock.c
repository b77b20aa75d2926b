/* test_lock.c — several threads sharing handles under pa_lock: refcounts, automatic
 * collections and weak references stay consistent. */
#include "handle_test.h"

#include <pthread.h>

static node *shared;

static void *worker(void *arg)
{
    for (int i = 0; i < 20000; i++) {
        pa_lock();
        node *x = t_node(&node_type, i), *y = t_node(&node_type, i);
        x->a = y;
        t_link(y, &y->a, x);
        t_link(x, &x->b, shared);
        pa_weakref *w = pa_weakref_new(x, NULL, NULL);
        pa_decref(x);
        pa_weakref_free(w);
        pa_unlock();
    }
    return NULL;
}

Test(lock, threads_share_handles_under_the_lock)
{
    pa_gc_set_threshold(50, 5, 5);
    shared = t_node(&node_type, -1);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, worker, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    pa_gc_collect(2);
    cr_assert_eq(pa_refcount(shared), 1, "every garbage pair dropped its reference");
    cr_assert_eq(pa_gc_tracked(), 1);
    pa_decref(shared);
}
