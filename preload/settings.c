/* settings.c — the PYARENA_* environment settings, read once at start-up with secure_getenv
 * (ignored in setuid programs). A bad value is reported on stderr and the default kept. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"
#include "pyarena.h"

PA_HIDDEN pa_settings pa_config = {
    .check = PA_DEFAULT_CHECK,
    .arena_cache = PA_DEFAULT_ARENA_CACHE,
    .purge = PA_DEFAULT_PURGE,
    .dirty_max = PA_DEFAULT_DIRTY_MAX,
    .decay_ms = PA_DEFAULT_DECAY_MS,
    .thread_cache = PA_DEFAULT_THREAD_CACHE,
    .spare_pools = PA_DEFAULT_SPARE_POOLS,
    .stats = NULL,
    .stats_format = PYARENA_STATS_TEXT,
};

static void complain(const char *name, const char *value, unsigned long max, unsigned dflt)
{
    char maxs[24], dflts[24];
    maxs[pa_os_fmt_dec(maxs, max)] = '\0';
    dflts[pa_os_fmt_dec(dflts, dflt)] = '\0';
    const char *parts[] = { "pyarena: ", name, "=", value, ": expected a whole number from 0 to ",
                            maxs, "; using ", dflts };
    pa_os_say(2, parts, sizeof parts / sizeof *parts);
}

static void read_uint(const char *name, unsigned *out, unsigned long max)
{
    const char *v = secure_getenv(name);
    if (v == NULL)
        return;
    const char *s = v;
    uint64_t x = pa_os_scan_dec(&s);
    if (s == v || *s != '\0' || x > max)
        goto bad;
    *out = (unsigned)x;
    return;
bad:
    complain(name, v, max, *out);
}

/* PYARENA_STATS's path, kept in a copy: the report reads it at exit, and programs that set
 * their process title (PostgreSQL, for one) write over the environment's strings by then. A
 * relative path is made absolute against the directory the program started in, since daemons
 * and build tools change directory before they exit. */
static char stats_dest[4096];

/* PYARENA_STATS: unset, empty or 0 is off; 1 or stderr, the terminal ("stderr"); anything
 * else a path. */
static void read_stats(void)
{
    const char *v = secure_getenv("PYARENA_STATS");
    if (v == NULL || *v == '\0' || strcmp(v, "0") == 0)
        return;
    if (strcmp(v, "1") == 0 || strcmp(v, "stderr") == 0) {
        pa_config.stats = "stderr";
    } else {
        size_t len = strlen(v), at = 0;
        if (v[0] != '/') {
            /* the system call, not getcwd: glibc's falls back to reading directories, which
             * allocates, for a directory deeper than the buffer or outside a chroot */
            if (syscall(SYS_getcwd, stats_dest, sizeof stats_dest) <= 0 || stats_dest[0] != '/') {
                const char *parts[] = { "pyarena: PYARENA_STATS=", v, ": relative, and the "
                                        "directory it is relative to cannot be read or is too "
                                        "long; no report" };
                pa_os_say(2, parts, 3);
                return;
            }
            at = strlen(stats_dest);
            if (at > 1)
                stats_dest[at++] = '/';
        }
        if (at + len >= sizeof stats_dest) {
            const char *parts[] = { "pyarena: PYARENA_STATS names a path longer than 4095 "
                                    "bytes; no report" };
            pa_os_say(2, parts, 1);
            return;
        }
        memcpy(stats_dest + at, v, len + 1);
        pa_config.stats = stats_dest;
    }
    const char *f = secure_getenv("PYARENA_STATS_FORMAT");
    if (f == NULL || strcmp(f, "text") == 0)
        pa_config.stats_format = PYARENA_STATS_TEXT;
    else if (strcmp(f, "json") == 0)
        pa_config.stats_format = PYARENA_STATS_JSON;
    else {
        const char *parts[] = { "pyarena: PYARENA_STATS_FORMAT=", f,
                                ": expected text or json; using text" };
        pa_os_say(2, parts, 3);
    }
}

void pa_settings_read(void)
{
    read_stats();
    read_uint("PYARENA_CHECK", &pa_config.check, 2);
    read_uint("PYARENA_ARENA_CACHE", &pa_config.arena_cache, 1024);
    read_uint("PYARENA_PURGE", &pa_config.purge, 1);
    read_uint("PYARENA_DIRTY_MAX", &pa_config.dirty_max, 1UL << 24);
    read_uint("PYARENA_DECAY_MS", &pa_config.decay_ms, 3600000);
    read_uint("PYARENA_THREAD_CACHE", &pa_config.thread_cache, PA_MAX_THREAD_CACHE);
    read_uint("PYARENA_SPARE_POOLS", &pa_config.spare_pools, PA_MAX_SPARE_POOLS);
}
