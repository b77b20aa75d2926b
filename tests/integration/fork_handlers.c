/* fork_handlers.c — malloc inside another library's fork handlers, which glibc allows. Built
 * twice: as fork_handlers.so (-DHANDLERS), whose constructor registers handlers that churn
 * small blocks (FORK_HANDLER_CHURN=prepare|parent|child says which), preloaded before and
 * after libpyarena.so; and as the program, which first takes and frees 8 MiB of large blocks
 * (so that the large path's decay tick is armed and due: it calls into jemalloc, whose own
 * fork handlers hold its locks), then forks. The churn's blocks of 512 bytes overflow the
 * thread cache, so the handlers take malloc's slow path hundreds of times. Arguments:
 * "threaded": another thread allocates meanwhile, so that the pools' locks are real ones;
 * "fresh": the main thread makes no small request before the fork, so its first one (which
 * sets up its heap) comes from a handler. A hang is the failure (run.sh's timeout); prints
 * "fork_handlers ok". */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HANDLERS

static void churn(const char *where)
{
    const char *which = getenv("FORK_HANDLER_CHURN");
    if (which == NULL || strcmp(which, where) != 0)
        return;
    void *b[9];
    for (int r = 0; r < 200; r++) {
        for (int i = 0; i < 9; i++)
            if ((b[i] = malloc(512)) == NULL)
                abort();
        for (int i = 0; i < 9; i++)
            free(b[i]);
    }
}

static void prepare(void) { churn("prepare"); }
static void parent(void)  { churn("parent"); }
static void child(void)   { churn("child"); }

__attribute__((constructor)) static void register_handlers(void)
{
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

int main(int argc, char **argv)
{
    pthread_t t;
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
