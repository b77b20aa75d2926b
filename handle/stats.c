/* stats.c — the handle library's section of pyarena's stats report: the collector's figures
 * per generation and the live tracked objects counted by type name (the leak listing Python
 * users build from gc.get_objects()). Registered at load; written without malloc or stdio. */
#include <string.h>
#include <unistd.h>

#include "hobj.h"
#include "pyarena.h"

#define PA_HSTATS_TYPES 64   /* distinct types listed; the rest are summed as "(other types)" */

typedef struct hout {
    int    fd;
    size_t n;
    char   buf[2048];
} hout;

static void hflush(hout *o)
{
    const char *p = o->buf;
    while (o->n) {
        ssize_t w = write(o->fd, p, o->n);
        if (w <= 0)
            break;
        p += w;
        o->n -= (size_t)w;
    }
    o->n = 0;
}

static void hput(hout *o, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (o->n == sizeof o->buf)
            hflush(o);
        o->buf[o->n++] = s[i];
    }
}

static void hstr(hout *o, const char *s)
{
    hput(o, s, strlen(s));
}

/* Decimal, right-aligned in width columns (0: no padding). */
static void hnum(hout *o, size_t v, size_t width)
{
    char t[24];
    size_t k = 0;
    do
        t[k++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (width-- > k)
        hput(o, " ", 1);
    while (k)
        hput(o, &t[--k], 1);
}

/* A type name as a JSON string: quotes, backslashes and control characters escaped. */
static void hjson_string(hout *o, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    hput(o, "\"", 1);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            hput(o, "\\", 1);
            hput(o, s, 1);
        } else if (c < 0x20) {
            char esc[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            hput(o, esc, 6);
        } else {
            hput(o, s, 1);
        }
    }
    hput(o, "\"", 1);
}

typedef struct type_count {
    const pa_type *type;
    size_t         count;
} type_count;

typedef struct census {
    type_count types[PA_HSTATS_TYPES];
    size_t     ntypes, other;
} census;

static void count_one(void *obj, void *arg)
{
    census *c = arg;
    const pa_type *t = pa_type_of(obj);
    for (size_t i = 0; i < c->ntypes; i++)
        if (c->types[i].type == t) {
            c->types[i].count++;
            return;
        }
    if (c->ntypes < PA_HSTATS_TYPES)
        c->types[c->ntypes++] = (type_count){ t, 1 };
    else
        c->other++;
}

/* Most numerous first (a few dozen entries: insertion sort). */
static void sort_census(census *c)
{
    for (size_t i = 1; i < c->ntypes; i++) {
        type_count t = c->types[i];
        size_t j = i;
        for (; j > 0 && c->types[j - 1].count < t.count; j--)
            c->types[j] = c->types[j - 1];
        c->types[j] = t;
    }
}

static void section(int fd, int format, void *arg)
{
    census c;
    pa_gc_stats gen[3];
    memset(&c, 0, sizeof c);
    pa_gc_get_stats(gen);
    pa_gc_foreach(count_one, &c);
    sort_census(&c);
    hout o = { .fd = fd };
    if (format == PYARENA_STATS_JSON) {
        hstr(&o, "{\"tracked\": ");
        hnum(&o, pa_gc_tracked(), 0);
        hstr(&o, ", \"frozen\": ");
        hnum(&o, pa_gc_freeze_count(), 0);
        hstr(&o, ", \"uncollectable_kept\": ");
        hnum(&o, pa_gc_garbage_count(), 0);
        hstr(&o, ", \"enabled\": ");
        hstr(&o, pa_gc_is_enabled() ? "true" : "false");
        hstr(&o, ",\n   \"generations\": [");
        for (int g = 0; g < 3; g++) {
            hstr(&o, g ? ", {\"collections\": " : "{\"collections\": ");
            hnum(&o, gen[g].collections, 0);
            hstr(&o, ", \"collected\": ");
            hnum(&o, gen[g].collected, 0);
            hstr(&o, ", \"uncollectable\": ");
            hnum(&o, gen[g].uncollectable, 0);
            hstr(&o, "}");
        }
        hstr(&o, "],\n   \"types\": [");
        for (size_t i = 0; i < c.ntypes; i++) {
            hstr(&o, i ? ", {\"name\": " : "{\"name\": ");
            hjson_string(&o, c.types[i].type->name);
            hstr(&o, ", \"count\": ");
            hnum(&o, c.types[i].count, 0);
            hstr(&o, "}");
        }
        if (c.other) {
            hstr(&o, c.ntypes ? ", " : "");
            hstr(&o, "{\"name\": null, \"count\": ");
            hnum(&o, c.other, 0);
            hstr(&o, "}");
        }
        hstr(&o, "]}");
    } else {
        hstr(&o, "handles (libpyarena_handle): ");
        hnum(&o, pa_gc_tracked(), 0);
        hstr(&o, " tracked, ");
        hnum(&o, pa_gc_freeze_count(), 0);
        hstr(&o, " frozen, ");
        hnum(&o, pa_gc_garbage_count(), 0);
        hstr(&o, " uncollectable kept; collector ");
        hstr(&o, pa_gc_is_enabled() ? "enabled\n" : "disabled\n");
        hstr(&o, "  generation  collections    collected  uncollectable\n");
        for (int g = 0; g < 3; g++) {
            hnum(&o, (size_t)g, 12);
            hnum(&o, gen[g].collections, 13);
            hnum(&o, gen[g].collected, 13);
            hnum(&o, gen[g].uncollectable, 15);
            hstr(&o, "\n");
        }
        hstr(&o, "  live tracked objects by type\n       count  type\n");
        for (size_t i = 0; i < c.ntypes; i++) {
            hnum(&o, c.types[i].count, 12);
            hstr(&o, "  ");
            hstr(&o, c.types[i].type->name ? c.types[i].type->name : "(unnamed)");
            hstr(&o, "\n");
        }
        if (c.other) {
            hnum(&o, c.other, 12);
            hstr(&o, "  (other types)\n");
        }
    }
    hflush(&o);
}

__attribute__((constructor)) static void pa_hstats_register(void)
{
    pyarena_stats_add_section("handles", section, NULL);
}
