/* forkthreads.c — fork from a threaded program under the preload: worker threads keep
 * allocating and freeing while the main thread forks; each child frees the blocks the parent's
 * workers published in a shared array, allocates anew, runs a thread of its own (every other
 * child also forks a grandchild of its own) and exits 0. The parent checks every status. */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WORKERS  3
#define SHARED   256     /* published blocks, slot i written by worker i % WORKERS */
#define FORKS    20

typedef struct pub {
    uint32_t size, seq;
} pub;

static _Atomic(pub *) shared[SHARED];
static atomic_int stop;

static uint32_t rng(uint64_t *s)
{
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return (uint32_t)(*s >> 11);
}

static void fill(pub *p, uint32_t size, uint32_t seq)
{
    p->size = size;
    p->seq = seq;
    unsigned char *c = (unsigned char *)p;
    for (size_t i = sizeof(pub); i < size; i++)
        c[i] = (unsigned char)(seq + i);
}

static int verify(const pub *p)
{
    const unsigned char *c = (const unsigned char *)p;
    for (size_t i = sizeof(pub); i < p->size; i++)
        if (c[i] != (unsigned char)(p->seq + i))
            return 1;
    return 0;
}

static void *worker(void *arg)
{
    int id = (int)(intptr_t)arg;
    uint64_t rs = 88172645463325252ull + (uint64_t)id;
    void *local[64] = {0};
    uint32_t seq = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        /* private churn */
        unsigned k = rng(&rs) % 64;
        free(local[k]);
        local[k] = malloc(1 + rng(&rs) % ((rng(&rs) & 15) ? 512 : 8192));
        if (local[k])
            memset(local[k], 0x5a, 1);
        /* publish a fresh block into one of our shared slots */
        unsigned slot = (unsigned)id + WORKERS * (rng(&rs) % (SHARED / WORKERS));
        uint32_t size = (uint32_t)sizeof(pub) + rng(&rs) % 505;
        pub *p = malloc(size);
        if (p == NULL)
            continue;
        fill(p, size, seq++);
        pub *old = atomic_exchange(&shared[slot], p);
        if (old) {
            if (verify(old))
                fprintf(stderr, "worker %d: corrupt block\n", id);
            free(old);
        }
    }
    for (int k = 0; k < 64; k++)
        free(local[k]);
    return NULL;
}

static void *child_thread(void *arg)
{
    void **blocks = arg;
    /* free what the child's main thread allocated, allocate and free our own */
    for (int i = 0; i < 1000; i++) {
        free(blocks[i]);
        blocks[i] = NULL;
    }
    for (int r = 0; r < 20; r++) {
        void *v[500];
        for (int i = 0; i < 500; i++) {
            v[i] = malloc((size_t)(i % 520) + 1);
            if (v[i] == NULL)
                return (void *)1;
            memset(v[i], 0x33, (size_t)(i % 520) + 1);
        }
        for (int i = 0; i < 500; i++)
            free(v[i]);
    }
    return NULL;
}

static int grandchild_main(void *blocks[1000])
{
    for (int i = 0; i < 1000; i += 2) {
        free(blocks[i]);
        blocks[i] = NULL;
    }
    pthread_t t;
    if (pthread_create(&t, NULL, child_thread, blocks) != 0 || pthread_join(t, NULL) != 0)
        return 1;
    return 0;
}

static int child_main(int nested)
{
    alarm(20);   /* a deadlock in the child ends it with SIGALRM rather than hanging */
    int taken = 0, bad = 0;
    for (int i = 0; i < SHARED; i++) {
        pub *p = atomic_exchange(&shared[i], NULL);
        if (p) {
            taken++;
            bad += verify(p);
            free(p);
        }
    }
    if (bad)
        return 3;
    if (taken == 0)
        return 4;
    static void *blocks[1000];
    for (int i = 0; i < 1000; i++) {
        blocks[i] = malloc((size_t)(i * 7) % 600 + 1);
        if (blocks[i] == NULL)
            return 5;
        memset(blocks[i], 0x77, (size_t)(i * 7) % 600 + 1);
    }
    pthread_t t;
    void *res = NULL;
    if (pthread_create(&t, NULL, child_thread, blocks) != 0)
        return 6;
    if (nested) {
        /* fork again while our own thread allocates and frees */
        pid_t g = fork();
        if (g == 0) {
            static void *gblocks[1000];
            for (int i = 0; i < 1000; i++)
                gblocks[i] = malloc((size_t)i % 513 + 1);
            exit(grandchild_main(gblocks));
        }
        int st;
        if (g < 0 || waitpid(g, &st, 0) != g || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
            return 9;
    }
    if (pthread_join(t, &res) != 0 || res != NULL)
        return 7;
    char *s = strdup("child done");
    if (s == NULL)
        return 8;
    free(s);
    return 0;
}

int main(void)
{
    pthread_t th[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        if (pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i) != 0) {
            printf("pthread_create failed\n");
            return 2;
        }
    int ok = 0;
    for (int f = 0; f < FORKS; f++) {
        struct timespec ts = { 0, 5 * 1000 * 1000 };   /* 5 ms of worker churn between forks */
        nanosleep(&ts, NULL);
        fflush(stdout);
        pid_t pid = fork();
        if (pid < 0) {
            printf("fork %d: fork failed\n", f);
            continue;
        }
        if (pid == 0)
            exit(child_main(f & 1));   /* exit, not _exit: atexit and TLS destructors run too */
        int st;
        if (waitpid(pid, &st, 0) != pid) {
            printf("fork %d: waitpid failed\n", f);
            continue;
        }
        if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
            ok++;
        else if (WIFEXITED(st))
            printf("fork %d: child exit status %d\n", f, WEXITSTATUS(st));
        else if (WIFSIGNALED(st))
            printf("fork %d: child killed by signal %d (%s)\n", f, WTERMSIG(st),
                   strsignal(WTERMSIG(st)));
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < SHARED; i++)
        free(atomic_exchange(&shared[i], NULL));
    printf("forks %d ok %d\n", FORKS, ok);
    return ok == FORKS ? 0 : 1;
}
