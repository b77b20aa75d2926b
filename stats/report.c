/* report.c — the heap report, as an aligned text table or one JSON object (README, "Stats").
 * Written through a stack buffer straight to a descriptor: no stdio, no malloc, so it can run
 * at exit, in a program that closed stdout, or while other threads allocate. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "pyarena.h"
#include "snapshot.h"

#include <stdatomic.h>

typedef struct out {
    int    fd;
    int    err;        /* first write error, 0 if none */
    size_t n;
    char   buf[4096];
} out;

static void flush(out *o)
{
    if (o->n && !o->err)
        o->err = pa_os_write(o->fd, o->buf, o->n);
    o->n = 0;
}

static void put(out *o, const char *s, size_t len)
{
    while (len) {
        if (o->n == sizeof o->buf)
            flush(o);
        size_t k = sizeof o->buf - o->n < len ? sizeof o->buf - o->n : len;
        memcpy(o->buf + o->n, s, k);
        o->n += k;
        s += k;
        len -= k;
    }
}

static void str(out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void u64(out *o, uint64_t v)
{
    char b[24];
    put(o, b, pa_os_fmt_dec(b, v));
}

/* Right-aligns the decimal v in width columns. */
static void u64w(out *o, uint64_t v, size_t width)
{
    char b[24];
    size_t len = pa_os_fmt_dec(b, v);
    while (width-- > len)
        put(o, " ", 1);
    put(o, b, len);
}

/* "512 B", "1.5 KiB", "12.0 MiB" — one decimal, truncated. */
static size_t fmt_bytes(char *b, uint64_t v)
{
    static const char *unit[] = { " B", " KiB", " MiB", " GiB", " TiB" };
    size_t u = 0;
    uint64_t whole = v, tenth = 0;
    while (whole >= 1024 && u < 4) {
        tenth = (whole % 1024) * 10 / 1024;
        whole /= 1024;
        u++;
    }
    size_t len = pa_os_fmt_dec(b, whole);
    if (u) {
        b[len++] = '.';
        b[len++] = (char)('0' + tenth);
    }
    for (const char *s = unit[u]; *s; s++)
        b[len++] = *s;
    return len;
}

static void bytes_w(out *o, uint64_t v, size_t width)
{
    char b[32];
    size_t len = fmt_bytes(b, v);
    put(o, b, len);
    while (width-- > len)
        put(o, " ", 1);
}

/* ---- the process's resident memory, from /proc/self/status */

static uint64_t status_kib(const char *text, const char *key)
{
    const char *p = strstr(text, key);
    if (p == NULL)
        return 0;
    p += strlen(key);
    while (*p == ' ' || *p == '\t')
        p++;
    return pa_os_scan_dec(&p);
}

static void process_rss(uint64_t *rss, uint64_t *peak)
{
    char text[8192];
    ssize_t n = 0, r;
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    *rss = *peak = 0;
    if (fd < 0)
        return;
    while (n < (ssize_t)sizeof text - 1 && (r = read(fd, text + n, sizeof text - 1 - (size_t)n)) > 0)
        n += r;
    close(fd);
    text[n] = '\0';
    *rss = status_kib(text, "VmRSS:") * 1024;
    *peak = status_kib(text, "VmHWM:") * 1024;
}

/* ---- sections other libraries add (pyarena_stats_add_section) */

#define PA_MAX_SECTIONS 8
static struct section {
    const char              *key;
    pyarena_stats_section_fn fn;
    void                    *arg;
} pa_sections[PA_MAX_SECTIONS];
static _Atomic unsigned pa_nsections;

int pa_stats_add_section(const char *key, pyarena_stats_section_fn fn, void *arg)
{
    if (key == NULL || fn == NULL) {
        errno = EINVAL;
        return -1;
    }
    unsigned i = atomic_fetch_add(&pa_nsections, 1);
    if (i >= PA_MAX_SECTIONS) {
        atomic_fetch_sub(&pa_nsections, 1);
        errno = ENOSPC;
        return -1;
    }
    pa_sections[i] = (struct section){ key, fn, arg };
    return 0;
}

/* Each section writes to the descriptor itself, after what is buffered. */
static void sections(out *o, int format)
{
    unsigned n = atomic_load(&pa_nsections);
    for (unsigned i = 0; i < n && i < PA_MAX_SECTIONS; i++) {
        if (format == PYARENA_STATS_JSON) {
            str(o, ",\n \"");
            str(o, pa_sections[i].key);
            str(o, "\": ");
        }
        flush(o);
        if (!o->err)
            pa_sections[i].fn(o->fd, format, pa_sections[i].arg);
    }
}

/* ---- gathering */

typedef struct report {
    pa_snapshot       s;
    pa_large_snapshot l;
    bool              tracked;     /* request sizes known (stats on) */
    uint64_t          waste;
    uint64_t          rss, peak_rss;
} report;

static void gather(report *r)
{
    pa_snapshot_take(&r->s);
    pa_large_snapshot_take(&r->l);
    r->tracked = pa_track_on;
    /* while other threads run, a block may be counted live by its mark but not in its class */
    r->waste = r->s.waste < r->s.block_bytes ? r->s.waste : r->s.block_bytes;
    process_rss(&r->rss, &r->peak_rss);
}

static size_t free_blocks(const pa_snapshot *s)
{
    size_t n = 0;
    for (size_t c = 0; c < PA_NCLASSES; c++)
        n += s->cls[c].free;
    return n;
}

/* ---- text */

static void line(out *o, const char *label, uint64_t bytes, const char *note)
{
    str(o, "  ");
    str(o, label);
    for (size_t i = strlen(label); i < 22; i++)
        str(o, " ");
    bytes_w(o, bytes, note ? 12 : 0);
    if (note)
        str(o, note);
    str(o, "\n");
}

static void text(out *o, const report *r)
{
    const pa_snapshot *s = &r->s;
    str(o, "pyarena stats, pid ");
    u64(o, (uint64_t)getpid());
    str(o, "\nsummary\n");
    if (r->tracked)
        line(o, "requested, live", s->block_bytes - r->waste, NULL);
    else
        str(o, "  requested, live      (set PYARENA_STATS to track request sizes)\n");
    line(o, "in small blocks", s->block_bytes, NULL);
    if (r->tracked)
        line(o, "internal waste", r->waste, "  class size minus request");
    line(o, "free in pools", s->free_bytes, NULL);
    line(o, "arenas mapped", s->arena_bytes, NULL);
    line(o, "large path, live", r->l.bytes, NULL);
    line(o, "resident (VmRSS)", r->rss, NULL);
    line(o, "peak resident", r->peak_rss, NULL);
    str(o, "  threads               ");
    u64(o, s->threads);
    str(o, "\n  remote frees          ");
    u64(o, s->remote_frees);
    str(o, "\n  free blocks           ");
    u64(o, free_blocks(s));

    str(o, "\nsmall classes (classes never used are left out)\n"
           "   size  pools     in use       free       allocs        frees\n");
    for (size_t c = 0; c < PA_NCLASSES; c++) {
        const pa_class_snapshot *k = &s->cls[c];
        if (k->allocs == 0 && k->pools == 0)
            continue;
        u64w(o, k->size, 7);
        u64w(o, k->pools, 7);
        u64w(o, k->in_use, 11);
        u64w(o, k->free, 11);
        u64w(o, k->allocs, 13);
        u64w(o, k->frees, 13);
        str(o, "\n");
    }

    const pa_arena_counts *a = &s->arenas;
    str(o, "arenas of 256 KiB: ");
    u64(o, a->current);
    str(o, " current, ");
    u64(o, a->peak);
    str(o, " peak, ");
    u64(o, a->allocated);
    str(o, " allocated, ");
    u64(o, a->released);
    str(o, " released, ");
    u64(o, a->cached);
    str(o, " cached; ");
    u64(o, a->pools_taken);
    str(o, " pools taken, ");
    u64(o, a->pools_purged);
    str(o, " purged with madvise\n");

    str(o, "large path (jemalloc): ");
    u64(o, r->l.in_use);
    str(o, " live in ");
    bytes_w(o, r->l.bytes, 0);
    str(o, ", ");
    u64(o, r->l.allocs);
    str(o, " allocations, ");
    u64(o, r->l.frees);
    str(o, " frees, ");
    bytes_w(o, r->l.mapped, 0);
    str(o, " mapped\n");
    for (size_t k = 0; k < PA_HIST_BUCKETS; k++) {
        if (r->l.hist[k] == 0)
            continue;
        str(o, "  <= ");
        bytes_w(o, (uint64_t)1 << k, 10);
        u64w(o, r->l.hist[k], 10);
        str(o, "\n");
    }
}

/* ---- JSON (keys documented in docs/stats.md) */

static void key(out *o, const char *k, uint64_t v, bool last)
{
    str(o, "\"");
    str(o, k);
    str(o, "\": ");
    u64(o, v);
    if (!last)
        str(o, ", ");
}

static void json(out *o, const report *r)
{
    const pa_snapshot *s = &r->s;
    str(o, "{\"schema\": 1, ");
    key(o, "pid", (uint64_t)getpid(), false);
    str(o, "\n \"summary\": {");
    if (r->tracked) {
        key(o, "requested_bytes", s->block_bytes - r->waste, false);
        key(o, "waste_bytes", r->waste, false);
    } else {
        str(o, "\"requested_bytes\": null, \"waste_bytes\": null, ");
    }
    key(o, "block_bytes", s->block_bytes, false);
    key(o, "free_blocks", free_blocks(s), false);
    key(o, "free_bytes", s->free_bytes, false);
    key(o, "arena_bytes", s->arena_bytes, false);
    key(o, "large_bytes", r->l.bytes, false);
    key(o, "threads", s->threads, false);
    key(o, "remote_frees", s->remote_frees, true);
    str(o, "},\n \"small\": {");
    key(o, "threshold", PA_SMALL_MAX, false);
    str(o, "\"classes\": [");
    for (size_t c = 0; c < PA_NCLASSES; c++) {
        const pa_class_snapshot *k = &s->cls[c];
        str(o, c ? ",\n   {" : "\n   {");
        key(o, "size", k->size, false);
        key(o, "pools", k->pools, false);
        key(o, "in_use", k->in_use, false);
        key(o, "free", k->free, false);
        key(o, "allocs", k->allocs, false);
        key(o, "frees", k->frees, true);
        str(o, "}");
    }
    const pa_arena_counts *a = &s->arenas;
    str(o, "]},\n \"arenas\": {");
    key(o, "size", PA_ARENA_SIZE, false);
    key(o, "current", a->current, false);
    key(o, "peak", a->peak, false);
    key(o, "allocated", a->allocated, false);
    key(o, "released", a->released, false);
    key(o, "cached", a->cached, false);
    key(o, "pools_purged", a->pools_purged, false);
    key(o, "pools_taken", a->pools_taken, true);
    str(o, "},\n \"large\": {");
    key(o, "in_use", r->l.in_use, false);
    key(o, "bytes", r->l.bytes, false);
    key(o, "allocs", r->l.allocs, false);
    key(o, "frees", r->l.frees, false);
    key(o, "mapped", r->l.mapped, false);
    str(o, "\"histogram\": [");
    bool first = true;
    for (size_t k = 0; k < PA_HIST_BUCKETS; k++) {
        if (r->l.hist[k] == 0)
            continue;
        str(o, first ? "{" : ", {");
        first = false;
        key(o, "le", (uint64_t)1 << k, false);
        key(o, "count", r->l.hist[k], true);
        str(o, "}");
    }
    str(o, "]},\n \"process\": {");
    key(o, "rss", r->rss, false);
    key(o, "peak_rss", r->peak_rss, true);
    str(o, "}");
    sections(o, PYARENA_STATS_JSON);
    str(o, "}\n");
}

int pa_stats_write(int fd, int format)
{
    if (format != PYARENA_STATS_TEXT && format != PYARENA_STATS_JSON) {
        errno = EINVAL;
        return -1;
    }
    report r;
    out o = { .fd = fd };
    gather(&r);
    if (format == PYARENA_STATS_JSON)
        json(&o, &r);
    else {
        text(&o, &r);
        sections(&o, PYARENA_STATS_TEXT);
    }
    flush(&o);
    if (o.err) {
        errno = o.err;
        return -1;
    }
    return 0;
}
