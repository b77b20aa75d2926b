/* fork_register.c — handlers registered on one thread while another forks, past the 48 after
 * which glibc grows its list of handlers with malloc, holding its atfork lock, which it drops
 * around each handler a fork runs (the registration guard: preload/fork.c). Each of RUNS
 * children, forked from this process while it has one thread (so each starts with only the
 * allocators' handlers), starts a thread that forks in a loop and registers 3,000 handlers
 * meanwhile: eleven growths of the list, by half each. A child that has not finished when its
 * alarm rings hung. Built as C and as C++ (fork_register_cxx, linked with libstdc++, whose
 * first request, its emergency pool, is large): jemalloc's registration is then the call that
 * starts pyarena, and the guard must still come after it. Argument: RUNS. Prints
 * "fork_register ok: RUNS runs", or which run hung and exits 1. */
#ifndef __cplusplus
#define _POSIX_C_SOURCE 200809L
#endif
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define REGISTRATIONS 3000
#define CHILD_SECONDS 10   /* a healthy child takes milliseconds */

static int stop;

static void nothing(void) {}

/* Forks and reaps until told to stop; returns how many grandchildren did not exit 0. */
static void *fork_loop(void *arg)
{
    (void)arg;
    long bad = 0;
    while (!__atomic_load_n(&stop, __ATOMIC_ACQUIRE)) {
        pid_t p = fork();
        if (p == 0)
            _exit(0);
        int st;
        if (p < 0 || waitpid(p, &st, 0) != p || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            bad++;
    }
    return (void *)bad;
}

static int child(void)
{
    alarm(CHILD_SECONDS);
    pthread_t t;
    if (pthread_create(&t, NULL, fork_loop, NULL) != 0)
        return 2;
    for (int i = 0; i < REGISTRATIONS; i++)
        if (pthread_atfork(nothing, nothing, nothing) != 0)
            return 3;
    __atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
    void *bad;
    if (pthread_join(t, &bad) != 0 || bad != NULL)
        return 4;
    return 0;
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 200;
#ifdef __cplusplus
    int *volatile probe = new int(runs);   /* links libstdc++, whose start-up makes the large
                                           * request */
    delete probe;
#endif
    for (int r = 0; r < runs; r++) {
        pid_t p = fork();
        if (p == 0)
            _exit(child());
        int st;
        if (p < 0 || waitpid(p, &st, 0) != p) {
            printf("run %d: fork or wait failed\n", r);
            return 1;
        }
        if (WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM) {
            printf("run %d: hung (no exit within %d s)\n", r, CHILD_SECONDS);
            return 1;
        }
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            printf("run %d: status %#x\n", r, (unsigned)st);
            return 1;
        }
    }
    printf("fork_register ok: %d runs\n", runs);
    return 0;
}
