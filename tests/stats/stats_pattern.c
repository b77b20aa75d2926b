/* stats_pattern.c — a known allocation pattern for the stats report, run under the preload.
 * `stats_pattern 0` is the baseline: libc's start-up blocks and the same helper thread;
 * `stats_pattern 1` leaves, at exit:
 *   1000 blocks of 100 bytes live (1500 allocated, 500 freed)        -> class 112
 *   150 blocks of 40 bytes live (300 allocated, 150 freed, 50 of them by another thread)
 *   10 blocks of 100000 bytes live on the large path
 *   the request bytes whose low byte alone is kept (track.c): 20 of malloc(0) (waste 16),
 *   30 of 256 bytes (low byte 0, waste 0), 40 of 500 bytes (class 512, waste 12) and 10 of
 *   250 bytes shrunk by realloc to 241 within their class (waste 15)
 * `stats_pattern fork` forks; both processes exit normally and print their pid.
 * `stats_pattern close` closes stderr before exit, as coreutils do.
 * `stats_pattern reuse FILE [all|ro]` closes every descriptor from 3 up (from 0 with all), as
 * daemons do, then opens FILE at each of them (the preload's duplicate of stderr among them;
 * read-only with ro), and exits.
 * `stats_pattern chdir DIR` changes to DIR before exit.
 * `stats_pattern title` writes over the environment's strings before exit, as programs that
 * set their process title in place do (PostgreSQL). */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static void *small40[300];

static void *remote_free(void *arg)
{
    if (arg)
        for (int i = 150; i < 200; i++)
            free(small40[i]);
    void *volatile mine = malloc(24);   /* this thread allocates too: one more heap */
    free(mine);
    return NULL;
}

static void pattern(void)
{
    static void *keep[1000], *large[10];
    for (int i = 0; i < 1000; i++)
        memset(keep[i] = malloc(100), 1, 100);
    for (int i = 0; i < 500; i++) {
        void *volatile p = malloc(100);   /* volatile: the compiler may not elide the pair */
        free(p);
    }
    for (int i = 0; i < 300; i++)
        small40[i] = malloc(40);
    for (int i = 200; i < 300; i++)
        free(small40[i]);
    pthread_t t;
    pthread_create(&t, NULL, remote_free, small40);
    pthread_join(t, NULL);
    for (int i = 0; i < 10; i++)
        memset(large[i] = malloc(100000), 2, 100000);
    static void *volatile edge[100];   /* volatile: unused results would let the compiler drop the mallocs */
    for (int i = 0; i < 20; i++)
        edge[i] = malloc(0);
    for (int i = 20; i < 50; i++)
        memset(edge[i] = malloc(256), 3, 256);
    for (int i = 50; i < 90; i++)
        memset(edge[i] = malloc(500), 4, 500);
    for (int i = 90; i < 100; i++) {
        void *p = malloc(250);
        if ((edge[i] = realloc(p, 241)) != p)
            abort();   /* shrinking within the class keeps the block */
    }
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "1";
    if (strcmp(mode, "1") == 0) {
        pattern();
    } else if (strcmp(mode, "0") == 0) {
        pthread_t t;   /* the same thread, minus the frees: glibc's thread blocks cancel out */
        pthread_create(&t, NULL, remote_free, NULL);
        pthread_join(t, NULL);
    }
    if (strcmp(mode, "fork") == 0) {
        pid_t child = fork();
        if (child == 0) {
            void *volatile p = malloc(64);
            free(p);
            exit(0);
        }
        waitpid(child, NULL, 0);
        printf("%d %d\n", (int)getpid(), (int)child);
    }
    if (strcmp(mode, "close") == 0)
        close(2);
    if (strcmp(mode, "reuse") == 0 && argc > 2) {
        const char *how = argc > 3 ? argv[3] : "";
        int from = strcmp(how, "all") == 0 ? 0 : 3;
        int fd = open(argv[2], strcmp(how, "ro") == 0 ? O_RDONLY : O_WRONLY | O_CREAT | O_APPEND,
                      0644);
        for (int i = from; i < 1024; i++)
            if (i != fd)
                close(i);
        for (int i = from; i < 1024; i++)
            if (i != fd)
                dup2(fd, i);
    }
    if (strcmp(mode, "chdir") == 0 && argc > 2 && chdir(argv[2]) != 0)
        return 1;
    if (strcmp(mode, "title") == 0)
        for (char **e = environ; *e != NULL; e++)
            memset(*e, 'Q', strlen(*e));
    return 0;
}
