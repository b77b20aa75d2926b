/* settings.c — the PYARENA_* environment settings, read once at start-up with secure_getenv
 * (ignored in setuid programs). A bad value is reported on stderr and the default kept. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pyarena.h"

PA_HIDDEN pa_settings pa_config = {
    .check = PA_DEFAULT_CHECK,
    .arena_cache = PA_DEFAULT_ARENA_CACHE,
    .purge = PA_DEFAULT_PURGE,
    .dirty_max = PA_DEFAULT_DIRTY_MAX,
    .decay_ms = PA_DEFAULT_DECAY_MS,
    .stats = NULL,
    .stats_format = PYARENA_STATS_TEXT,
};

/* Formats v in decimal into buf (at least 21 bytes); returns the length. */
static size_t fmt_uint(char *buf, unsigned long v)
{
    char tmp[21];
    size_t n = 0, len = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n)
        buf[len++] = tmp[--n];
    return len;
}

static void complain(const char *name, const char *value, unsigned long max, unsigned dflt)
{
    char msg[256];
    size_t n = 0;
    const char *parts[] = { "pyarena: ", name, "=", value, ": expected a whole number from 0 to " };
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++)
        for (const char *s = parts[i]; *s && n < 200; s++)
            msg[n++] = *s;
    n += fmt_uint(msg + n, max);
    const char mid[] = "; using ";
    for (const char *s = mid; *s; s++)
        msg[n++] = *s;
    n += fmt_uint(msg + n, dflt);
    msg[n++] = '\n';
    pa_os_write(2, msg, n);
}

static void read_uint(const char *name, unsigned *out, unsigned long max)
{
    const char *v = secure_getenv(name);
    if (v == NULL)
        return;
    unsigned long x = 0;
    const char *s = v;
    if (*s == '\0')
        goto bad;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || (x = x * 10 + (unsigned long)(*s - '0')) > max)
            goto bad;
    }
    *out = (unsigned)x;
    return;
bad:
    complain(name, v, max, *out);
}

static void say(const char *const *parts, size_t n)
{
    char msg[512];
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        for (const char *s = parts[i]; *s && len < sizeof msg - 1; s++)
            msg[len++] = *s;
    msg[len++] = '\n';
    pa_os_write(2, msg, len);
}

/* PYARENA_STATS: unset, empty or 0 is off; 1 or stderr, the terminal; anything else a path. */
static void read_stats(void)
{
    const char *v = secure_getenv("PYARENA_STATS");
    if (v == NULL || *v == '\0' || strcmp(v, "0") == 0)
        return;
    pa_config.stats = v;
    const char *f = secure_getenv("PYARENA_STATS_FORMAT");
    if (f == NULL || strcmp(f, "text") == 0)
        pa_config.stats_format = PYARENA_STATS_TEXT;
    else if (strcmp(f, "json") == 0)
        pa_config.stats_format = PYARENA_STATS_JSON;
    else {
        const char *parts[] = { "pyarena: PYARENA_STATS_FORMAT=", f,
                                ": expected text or json; using text" };
        say(parts, 3);
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
}
