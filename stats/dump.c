/* dump.c — the report at exit: where it goes (a duplicate of stderr taken at start-up, since
 * programs close stderr before exit, or a file named by PYARENA_STATS with %p replaced by the
 * pid, so each forked child writes its own), and when (an atexit handler registered at
 * start-up, so it runs after the program's own handlers). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pyarena.h"
#include "snapshot.h"

static int   pa_stats_fd = -1;   /* duplicate of stderr, when the report goes there */
static bool  pa_stderr_known;     /* stderr was open at start-up, on this file: */
static dev_t pa_stderr_dev;       /* a program may close every descriptor, 2 included, and */
static ino_t pa_stderr_ino;       /* open files or sockets of its own in their places */

/* Is fd open for writing on the file stderr was at start-up? */
static bool is_startup_stderr(int fd)
{
    struct stat st;
    int flags = fcntl(fd, F_GETFL);
    return pa_stderr_known && flags >= 0 && (flags & O_ACCMODE) != O_RDONLY &&
           fstat(fd, &st) == 0 && st.st_dev == pa_stderr_dev && st.st_ino == pa_stderr_ino;
}

/* Where a report or a message for stderr goes: the duplicate, else fd 2, whichever still is
 * what stderr was at start-up; -1 if neither is (nothing is written: the program's own file
 * or socket must not get it). */
static int report_fd(void)
{
    if (pa_stats_fd >= 0 && is_startup_stderr(pa_stats_fd))
        return pa_stats_fd;
    return is_startup_stderr(2) ? 2 : -1;
}

static bool to_stderr(const char *dest)
{
    return strcmp(dest, "stderr") == 0;   /* settings.c's name for 1 and stderr */
}

static size_t append(char *buf, size_t n, size_t cap, const char *s, size_t len)
{
    if (n + len >= cap)
        return cap;
    memcpy(buf + n, s, len);
    return n + len;
}

/* Expands %p (pid) and %% in pattern; returns false if the result does not fit. */
static bool expand(char *buf, size_t cap, const char *pattern)
{
    size_t n = 0;
    for (const char *s = pattern; *s && n < cap; s++) {
        if (s[0] == '%' && s[1] == 'p') {
            char pid[24];
            n = append(buf, n, cap, pid, pa_os_fmt_dec(pid, (uint64_t)getpid()));
            s++;
        } else if (s[0] == '%' && s[1] == '%') {
            n = append(buf, n, cap, "%", 1);
            s++;
        } else {
            n = append(buf, n, cap, s, 1);
        }
    }
    if (n >= cap)
        return false;
    buf[n] = '\0';
    return true;
}

static void complain(const char *what, const char *path, int err)
{
    const char *parts[] = { "pyarena: ", what, " ", path, ": ", strerror(err) };
    int fd = report_fd();
    if (fd >= 0)
        pa_os_say(fd, parts, sizeof parts / sizeof *parts);
}

static void at_exit(void)
{
    const char *dest = pa_config.stats;
    if (to_stderr(dest)) {
        int fd = report_fd();
        if (fd >= 0)
            pa_stats_write(fd, pa_config.stats_format);
        return;
    }
    if (getauxval(AT_SECURE))
        return;
    char path[4096];
    if (!expand(path, sizeof path, dest)) {
        complain("stats file name too long:", dest, ENAMETOOLONG);
        return;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) {
        complain("cannot write stats to", path, errno);
        return;
    }
    if (pa_stats_write(fd, pa_config.stats_format) != 0)
        complain("cannot write stats to", path, errno);
    close(fd);
}

/* Start-up, when PYARENA_STATS is set: track request sizes, keep stderr, register the dump. */
void pa_stats_setup(void)
{
    pa_track_on = 1;
    struct stat st;
    if (fstat(2, &st) == 0) {
        pa_stderr_known = true;
        pa_stderr_dev = st.st_dev;
        pa_stderr_ino = st.st_ino;
    }
    if (pa_stderr_known && to_stderr(pa_config.stats)) {
        pa_stats_fd = fcntl(2, F_DUPFD_CLOEXEC, 100);
        if (pa_stats_fd < 0)
            pa_stats_fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
    }
    atexit(at_exit);
}
