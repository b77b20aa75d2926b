/* probe.h — what the integration programs share: one "OK name" / "FAIL name: why" line per
 * check (counted in probe_ok / probe_failed), and the process's resident memory. */
#ifndef PA_PROBE_H
#define PA_PROBE_H

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int probe_ok, probe_failed;

static void check(int ok, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4), unused));

static void check(int ok, const char *name, const char *fmt, ...)
{
    if (ok) {
        probe_ok++;
        printf("OK %s\n", name);
        return;
    }
    probe_failed++;
    va_list ap;
    va_start(ap, fmt);
    printf("FAIL %s: ", name);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* A "Vm...:" field of /proc/self/status in KiB (field with its colon: "VmRSS:"), read
 * without stdio (which would allocate), or -1. */
static __attribute__((unused)) long status_kib(const char *field)
{
    char buf[8192];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = 0;
    char *p = strstr(buf, field);
    return p ? strtol(p + strlen(field), NULL, 10) : -1;
}

/* VmRSS in KiB, or -1. */
static __attribute__((unused)) long rss_kib(void)
{
    return status_kib("VmRSS:");
}

#endif
