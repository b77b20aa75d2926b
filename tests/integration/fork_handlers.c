/* fork_handlers.c — malloc inside another library's fork handlers, which glibc allows. Built
 * twice: as fork_handlers.so (-DHANDLERS), whose constructor registers handlers that churn
 * small blocks (FORK_HANDLER_CHURN=prepare|parent|child says which; with FORK_HANDLER_LARGE=1
 * also large, zeroed, aligned and reallocated ones, which jemalloc serves), preloaded before
 * and after libpyarena.so (after it, its constructor runs first and registers its handlers
 * before pyarena has started, unless pyarena puts its own and jemalloc's first: atfork.c); and as the program, which first takes and frees 8 MiB of large blocks
 * (so that the large path's decay tick is armed and due: it calls into jemalloc, whose own
 * fork handlers hold its locks), then forks. The churn's 40 blocks of 512 bytes overflow the
 * thread cache, so the handlers take malloc's slow path hundreds of times. Arguments:
 * "threaded": another thread allocates meanwhile, so that the pools' locks are real ones;
 * "fresh": the main thread makes no small request before the fork, so its first one (which
 * sets up its heap) comes from a handler; "trim" (alone): 30 forks, each from a new thread,
 * while another thread calls malloc_trim during the handlers' churn. A hang, an abort or a
 * corrupted block is the failure (run.sh's timeout); prints "fork_handlers ok". */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* rounds of n blocks of 512 bytes, filled, checked and freed; go (if not NULL) is set after
 * round 20. Returns 0 if a block came back changed. */
static int churn_512(int n, int rounds, int *go)
{
    unsigned char *b[64];
    int ok = 1;
    for (int r = 0; r < rounds; r++) {
        if (go != NULL && r == 20)
            __atomic_store_n(go, 1, __ATOMIC_RELEASE);
        for (int i = 0; i < n; i++) {
            if ((b[i] = malloc(512)) == NULL)
                abort();
            memset(b[i], i + 1, 512);
        }
        for (int i = 0; i < n; i++) {
            for (int k = 0; k < 512; k++)
                ok = ok && b[i][k] == i + 1;
            free(b[i]);
        }
    }
    return ok;
}

#ifdef HANDLERS

int fork_handlers_go;   /* set once a churn is under way: the program's "trim" mode waits for it */

/* Requests jemalloc serves: above 512 bytes, zeroed, aligned above 16, grown by realloc. */
static void churn_large(void)
{
    for (int r = 0; r < 20; r++) {
        size_t n = 4096 + (size_t)r * 1000;
        unsigned char *p = malloc(n), *z = calloc(1, 200000), *a = NULL;
        if (p == NULL || z == NULL || posix_memalign((void **)&a, 256, 1000) != 0 ||
            ((uintptr_t)a & 255) != 0)
            abort();
        memset(p, r + 1, n);
        memset(a, r + 2, 1000);
        if ((p = realloc(p, 3 * n)) == NULL)
            abort();
        for (size_t k = 0; k < n; k++)
            if (p[k] != r + 1)
                abort();
        for (size_t k = 0; k < 200000; k += 512)
            if (z[k] != 0)
                abort();
        free(p);
        free(z);
        free(a);
    }
}

static void churn(const char *where)
{
    const char *which = getenv("FORK_HANDLER_CHURN"), *large = getenv("FORK_HANDLER_LARGE");
    if (which == NULL || strcmp(which, where) != 0)
        return;
    if (large != NULL && strcmp(large, "1") == 0)
        churn_large();
    if (!churn_512(40, 200, &fork_handlers_go))
        abort();
}

static void prepare(void) { churn("prepare"); }
static void parent(void)  { churn("parent"); }
static void child(void)   { churn("child"); }

/* FORK_HANDLER_VIA=compat: through a versioned reference to glibc's compatibility
 * pthread_atfork@GLIBC_2.2.5 (weak references, as libtcmalloc_minimal's, bind there too),
 * rather than the stub from libc_nonshared.a linked in here: it binds to the preload's
 * pthread_atfork when there is one, else to glibc's, which registers inside libc. */
#if defined(__x86_64__)
int compat_pthread_atfork(void (*)(void), void (*)(void), void (*)(void));
__asm__(".symver compat_pthread_atfork, pthread_atfork@GLIBC_2.2.5");
#else
#define compat_pthread_atfork pthread_atfork
#endif

__attribute__((constructor)) static void register_handlers(void)
{
    const char *via = getenv("FORK_HANDLER_VIA");
    if (via != NULL && strcmp(via, "compat") == 0)
        compat_pthread_atfork(prepare, parent, child);
    else
        pthread_atfork(prepare, parent, child);
}

#else

static _Atomic int stop;

/* Another thread allocating throughout, so that the pools' locks are real ones. */
static void *busy(void *arg)
{
    (void)arg;
    while (!stop) {
        void *b[64];
        for (int i = 0; i < 64; i++)
            if ((b[i] = malloc(16 + (size_t)(i % 32) * 16)) == NULL)
                abort();
        for (int i = 0; i < 64; i++)
            free(b[i]);
    }
    return NULL;
}

/* "trim" mode: a thread that only calls malloc_trim (its own heap never starts), each time a
 * handler's churn is under way, so that it walks the spare lists while the forking thread,
 * whose first small request came from the handler, works on its new heap's. */
static void *trimmer(void *arg)
{
    int *go = dlsym(RTLD_DEFAULT, "fork_handlers_go");
    (void)arg;
    while (!stop) {
        if (go == NULL || !__atomic_exchange_n(go, 0, __ATOMIC_ACQ_REL))
            continue;
        malloc_trim(0);
    }
    return NULL;
}

static _Atomic int forked;   /* 0: not yet; 1: done; 2: failed */

/* Forks as a new thread's first small request would (from the handler), then keeps its heap
 * live and checks that its pools still hand out sound blocks. */
static void *fork_fresh(void *arg)
{
    (void)arg;
    pid_t pid = fork();
    int st, ok = pid >= 0;
    if (pid == 0)
        _exit(0);
    ok = ok && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
    ok = ok && churn_512(64, 100, NULL);
    forked = ok ? 1 : 2;
    for (;;)
        pause();
}

static int trim_mode(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, trimmer, NULL) != 0)
        return 2;
    for (int f = 0; f < 30; f++) {
        pthread_t ft;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        forked = 0;
        if (pthread_create(&ft, &a, fork_fresh, NULL) != 0)
            return 2;
        while (forked == 0)
            usleep(100);
        if (forked != 1)
            return 3;
    }
    stop = 1;
    pthread_join(t, NULL);
    printf("fork_handlers ok\n");
    return 0;
}

int main(int argc, char **argv)
{
    pthread_t t;
    if (argc > 1 && strcmp(argv[1], "trim") == 0)
        return trim_mode();
    int threaded = argc > 1 && strcmp(argv[1], "threaded") == 0,
        fresh = argc > 2 && strcmp(argv[2], "fresh") == 0;
    if (threaded && pthread_create(&t, NULL, busy, NULL) != 0)
        return 2;
    void *big[9];
    for (int r = 0; r < (fresh ? 0 : 10); r++) {   /* unless fresh, this thread's heap is in
                                                       use before the fork */
        for (int i = 0; i < 9; i++)
            if ((big[i] = malloc(512)) == NULL)
                return 2;
        for (int i = 0; i < 9; i++)
            free(big[i]);
    }
    for (int i = 0; i < 8; i++) {
        if ((big[i] = malloc(1 << 20)) == NULL)
            return 2;
        memset(big[i], 1, 1 << 20);
    }
    for (int i = 0; i < 8; i++)
        free(big[i]);
    usleep(100 * 1000);   /* past the tick's rate limit */
    pid_t pid = fork();
    if (pid < 0)
        return 2;
    if (pid == 0)
        _exit(0);
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return 3;
    if (threaded) {
        stop = 1;
        pthread_join(t, NULL);
    }
    printf("fork_handlers ok\n");
    return 0;
}

#endif
