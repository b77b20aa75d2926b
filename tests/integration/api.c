/* api.c — malloc-family semantics as seen through the preload: realloc corner cases, overflow
 * and ENOMEM/EINVAL errors, malloc(0), the aligned allocators, errno across free, glibc
 * internals (strdup, getline, asprintf, stdio, regex) allocating through the preload, and the
 * mallinfo2/malloc_trim/mallopt/malloc_stats/malloc_info entry points. One "OK name" / "FAIL name: why"
 * line per check, then "api checks: N ok, M failed". */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "probe.h"


/* Sizes hidden from the compiler, so that it neither warns about nor folds the huge requests. */
static volatile size_t v_size_max = SIZE_MAX;
static volatile size_t v_over_ptrdiff = (size_t)PTRDIFF_MAX + 1;


static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed + i * 13);
}

static int same(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed + i * 13))
            return 0;
    return 1;
}

static int aligned(const void *p, size_t a)
{
    return p != NULL && ((uintptr_t)p & (a - 1)) == 0;
}

static void test_realloc(void)
{
    unsigned char *p = realloc(NULL, 100);
    check(p != NULL && malloc_usable_size(p) >= 100, "realloc_null", "realloc(NULL, 100) = %p",
          (void *)p);
    free(p);

    /* realloc(p, 0) returns NULL and frees: 300k of them must not grow RSS by ~60 MiB */
    long r0 = rss_kib();
    int nonnull = 0;
    for (int i = 0; i < 300000; i++) {
        void *q = malloc(200);
        memset(q, 1, 200);
        void *r = realloc(q, 0);
        if (r != NULL) {
            nonnull++;
            free(r);
        }
    }
    long r1 = rss_kib();
    check(nonnull == 0, "realloc_zero_null", "realloc(p, 0) returned non-NULL %d times", nonnull);
    check(r1 - r0 < 16 * 1024, "realloc_zero_frees", "RSS grew %ld KiB over 300000 realloc(p, 0)",
          r1 - r0);

    /* growing and shrinking within the class keeps the block */
    p = malloc(130);
    fill(p, 130, 1);
    uintptr_t was = (uintptr_t)p;   /* addresses compared as integers: p is dead after realloc */
    unsigned char *q = realloc(p, 144);
    check((uintptr_t)q == was && same(q, 130, 1), "realloc_grow_in_class",
          "realloc(malloc(130), 144) moved %#lx -> %p", (unsigned long)was, (void *)q);
    was = (uintptr_t)q;
    p = realloc(q, 129);
    check((uintptr_t)p == was && same(p, 129, 1), "realloc_shrink_in_class",
          "realloc(p144, 129) moved %#lx -> %p", (unsigned long)was, (void *)p);
    free(p);

    /* small -> large -> huge -> small keeps the data */
    p = malloc(100);
    fill(p, 100, 7);
    q = realloc(p, 5000);
    int ok = q != NULL && same(q, 100, 7);
    if (q) fill(q, 5000, 9);
    p = q ? realloc(q, 300000) : NULL;
    ok = ok && p != NULL && same(p, 5000, 9);
    q = p ? realloc(p, 40) : NULL;
    ok = ok && q != NULL && same(q, 40, 9) && malloc_usable_size(q) >= 40;
    p = q ? realloc(q, 512) : NULL;
    ok = ok && p != NULL && same(p, 40, 9);
    q = p ? realloc(p, 513) : NULL;
    ok = ok && q != NULL && same(q, 40, 9);
    check(ok, "realloc_small_large_moves", "data lost across small/large reallocs");
    free(q);

    /* shrinking a large block to small size and growing a small block to just above 512 */
    p = malloc(1000);
    fill(p, 1000, 3);
    q = realloc(p, 16);
    check(q != NULL && same(q, 16, 3), "realloc_large_to_small", "prefix lost");
    free(q);

    /* failed realloc leaves the old block intact */
    p = malloc(64);
    fill(p, 64, 5);
    errno = 0;
    q = realloc(p, v_size_max);
    int err = errno;
    if (q == NULL) {
        check(err == ENOMEM && same(p, 64, 5), "realloc_huge_enomem",
              "realloc(p, SIZE_MAX) failed with errno %d or lost the data", err);
        free(p);
    } else {
        check(0, "realloc_huge_enomem", "realloc(p, SIZE_MAX) = %p", (void *)q);
        free(q);
    }
}

static void test_errors(void)
{
    errno = 0;
    void *p = calloc(v_size_max / 2, 3);
    check(p == NULL && errno == ENOMEM, "calloc_overflow", "calloc(SIZE_MAX/2, 3) = %p errno %d",
          p, errno);
    errno = 0;
    p = calloc(v_size_max, v_size_max);
    check(p == NULL && errno == ENOMEM, "calloc_overflow2", "calloc(SIZE_MAX, SIZE_MAX) = %p "
          "errno %d", p, errno);
    errno = 0;
    p = malloc(v_size_max);
    check(p == NULL && errno == ENOMEM, "malloc_size_max", "malloc(SIZE_MAX) = %p errno %d", p,
          errno);
    errno = 0;
    p = malloc(v_over_ptrdiff);
    check(p == NULL && errno == ENOMEM, "malloc_over_ptrdiff", "malloc(PTRDIFF_MAX+1) = %p errno "
          "%d", p, errno);
    errno = 0;
    p = malloc(v_size_max - 4096);
    check(p == NULL && errno == ENOMEM, "malloc_size_max_minus_page", "malloc(SIZE_MAX-4096) = %p "
          "errno %d", p, errno);
    errno = 0;
    p = reallocarray(NULL, v_size_max / 2, 3);
    check(p == NULL && errno == ENOMEM, "reallocarray_overflow", "= %p errno %d", p, errno);
    void *q = malloc(10);
    errno = 0;
    p = reallocarray(q, v_size_max / 4, 8);
    check(p == NULL && errno == ENOMEM, "reallocarray_overflow_keeps", "= %p errno %d", p, errno);
    p = reallocarray(q, 10, 10);
    check(p != NULL && malloc_usable_size(p) >= 100, "reallocarray_ok", "reallocarray(q, 10, 10) "
          "= %p", p);
    free(p);
    errno = 0;
    p = aligned_alloc(64, v_size_max - 32);
    check(p == NULL && errno == ENOMEM, "aligned_alloc_huge", "= %p errno %d", p, errno);
    q = NULL;
    int rc = posix_memalign(&q, 64, v_size_max - 32);
    check(rc == ENOMEM && q == NULL, "posix_memalign_huge", "rc %d", rc);
}

static void test_zero(void)
{
    enum { N = 200 };
    void *v[N];
    int ok = 1;
    for (int i = 0; i < N; i++) {
        v[i] = malloc(0);
        if (v[i] == NULL)
            ok = 0;
        for (int j = 0; j < i && ok; j++)
            if (v[j] == v[i])
                ok = 0;
    }
    check(ok, "malloc_zero_unique", "malloc(0) returned NULL or a duplicate pointer");
    for (int i = 0; i < N; i++)
        free(v[i]);
    void *c = calloc(0, 10);
    check(c != NULL, "calloc_zero", "calloc(0, 10) = NULL");
    free(c);
}

static void test_calloc_zeroes(void)
{
    int ok = 1;
    for (size_t n = 1; n <= 2048 && ok; n += (n < 600 ? 7 : 257)) {
        unsigned char *d[8];
        for (int k = 0; k < 8; k++) {
            d[k] = malloc(n);
            memset(d[k], 0xab, n);
        }
        for (int k = 0; k < 8; k++)
            free(d[k]);
        for (int k = 0; k < 8; k++) {
            d[k] = calloc(1, n);
            for (size_t i = 0; d[k] && i < n; i++)
                if (d[k][i]) {
                    ok = 0;
                    break;
                }
            if (!d[k])
                ok = 0;
        }
        for (int k = 0; k < 8; k++)
            free(d[k]);
    }
    check(ok, "calloc_zeroes_reused", "calloc returned non-zero bytes");
}

static void test_aligned(void)
{
    static const size_t bad[] = { 0, 1, 2, 4, 24, 48, 100, 3 * 64 };
    int ok = 1;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        void *p = (void *)1;
        int rc = posix_memalign(&p, bad[i], 64);
        if (rc != EINVAL) {
            ok = 0;
            printf("  posix_memalign(align %zu) = %d\n", bad[i], rc);
            if (rc == 0)
                free(p);
        }
    }
    check(ok, "posix_memalign_einval", "bad alignment not rejected with EINVAL");

    ok = 1;
    for (size_t a = sizeof(void *); a <= 8192; a *= 2)
        for (size_t n = 1; n <= 1100; n = n * 3 + 1) {
            void *p = NULL;
            if (posix_memalign(&p, a, n) != 0 || !aligned(p, a) || malloc_usable_size(p) < n)
                ok = 0;
            else
                memset(p, 0x11, n);
            free(p);
        }
    check(ok, "posix_memalign_align", "misaligned or short block");

    ok = 1;
    for (size_t a = 1; a <= 4096; a *= 2) {
        void *p = aligned_alloc(a, 4 * a);
        void *q = memalign(a, 100);
        if (!aligned(p, a) || !aligned(q, a) || malloc_usable_size(q) < 100)
            ok = 0;
        free(p);
        free(q);
    }
    check(ok, "aligned_alloc_memalign", "misaligned block");

    long page = sysconf(_SC_PAGESIZE);
    void *v = valloc(100);
    check(aligned(v, (size_t)page) && malloc_usable_size(v) >= 100, "valloc", "valloc(100) = %p",
          v);
    free(v);
    void *pv = pvalloc(100);
    check(aligned(pv, (size_t)page) && malloc_usable_size(pv) >= (size_t)page, "pvalloc",
          "pvalloc(100) = %p usable %zu", pv, pv ? malloc_usable_size(pv) : 0);
    if (pv)
        memset(pv, 0x22, (size_t)page);   /* pvalloc rounds the size up to a whole page */
    free(pv);

    /* realloc of an over-aligned block keeps the data */
    unsigned char *a = aligned_alloc(256, 256);
    fill(a, 256, 11);
    unsigned char *b = realloc(a, 3000);
    check(b != NULL && same(b, 256, 11), "realloc_aligned", "data lost");
    free(b);
}

static void test_misc(void)
{
    int ok = 1;
    for (size_t n = 0; n < 3000000 && ok; n = n * 2 + 1) {
        errno = 12345;
        void *p = malloc(n);
        errno = 12345;
        free(p);
        if (errno != 12345)
            ok = 0;
    }
    errno = 777;
    free(NULL);
    check(ok && errno == 777, "free_keeps_errno", "free changed errno");
    check(malloc_usable_size(NULL) == 0, "usable_null", "malloc_usable_size(NULL) = %zu",
          malloc_usable_size(NULL));

    int wrote = 1;
    for (size_t n = 1; n <= 700; n++) {
        unsigned char *p = malloc(n);
        size_t u = malloc_usable_size(p);
        if (u < n) {
            wrote = 0;
        }
        memset(p, 0xee, u);   /* the whole usable size is ours to write */
        free(p);
    }
    check(wrote, "usable_ge_request", "malloc_usable_size below the request");
}

static void test_glibc_internals(void)
{
    char *s = strdup("pyarena integration");
    check(s && strcmp(s, "pyarena integration") == 0 && malloc_usable_size(s) >= 20, "strdup",
          "strdup broken");
    free(s);
    s = strndup("abcdefgh", 3);
    check(s && strcmp(s, "abc") == 0, "strndup", "strndup broken");
    free(s);

    char *a = NULL;
    int n = asprintf(&a, "%s-%d-%0300d", "x", 42, 7);
    check(n == 305 && a && strncmp(a, "x-42-000", 8) == 0 && malloc_usable_size(a) >= 306,
          "asprintf", "asprintf returned %d", n);
    free(a);

    /* stdio: a temporary file written with fprintf, read back with getline */
    FILE *f = tmpfile();
    int ok = f != NULL;
    for (int i = 0; ok && i < 2000; i++)
        fprintf(f, "line %d %.*s\n", i, i % 300, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    if (f)
        rewind(f);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int lines = 0;
    long total = 0;
    while (f && (len = getline(&line, &cap, f)) > 0) {
        lines++;
        total += len;
    }
    check(ok && lines == 2000 && line && malloc_usable_size(line) >= cap, "stdio_getline",
          "read %d lines, %ld bytes", lines, total);
    free(line);
    if (f)
        fclose(f);

    f = fopen("/proc/self/status", "r");
    line = NULL;
    cap = 0;
    int found = 0;
    while (f && getline(&line, &cap, f) > 0)
        found |= strncmp(line, "VmRSS:", 6) == 0;
    check(found, "fopen_proc", "no VmRSS line in /proc/self/status");
    free(line);
    if (f)
        fclose(f);

    char *buf = NULL;
    size_t blen = 0;
    FILE *m = open_memstream(&buf, &blen);
    for (int i = 0; m && i < 10000; i++)
        fprintf(m, "%d,", i);
    if (m)
        fclose(m);
    check(m && buf && blen == 48890 && strncmp(buf, "0,1,2,", 6) == 0, "open_memstream",
          "length %zu", blen);
    free(buf);

    regex_t re;
    int rc = regcomp(&re, "^(a|b)+c[0-9]{2,5}$", REG_EXTENDED);
    int match = rc == 0 && regexec(&re, "abbac1234", 0, NULL, 0) == 0 &&
                regexec(&re, "abbac1", 0, NULL, 0) != 0;
    if (rc == 0)
        regfree(&re);
    check(match, "regex", "regcomp/regexec wrong");

    ok = 1;
    for (int i = 0; i < 2000; i++) {
        char k[32], v[32];
        snprintf(k, sizeof k, "PA_TEST_%d", i % 50);
        snprintf(v, sizeof v, "%d", i);
        if (setenv(k, v, 1) != 0 || strcmp(getenv(k), v) != 0)
            ok = 0;
    }
    check(ok, "setenv", "setenv/getenv broken");
}

static void test_info(void)
{
    void *keep[100];
    for (int i = 0; i < 100; i++)
        keep[i] = malloc(64 + (size_t)i);
    struct mallinfo2 mi = mallinfo2();
    check(mi.arena > 0 && mi.uordblks > 0, "mallinfo2", "arena %zu uordblks %zu fordblks %zu "
          "hblkhd %zu", mi.arena, mi.uordblks, mi.fordblks, mi.hblkhd);
    for (int i = 0; i < 100; i++)
        free(keep[i]);
    int t = malloc_trim(0);
    check(t == 0 || t == 1, "malloc_trim", "malloc_trim(0) = %d", t);
    check(mallopt(M_TRIM_THRESHOLD, 256 * 1024) == 1, "mallopt", "mallopt(M_TRIM_THRESHOLD) not "
          "accepted");
    /* malloc_stats writes to stderr: point it at a file for the call, which must get
     * pyarena's report (glibc's starts "Arena 0:") */
    char path[] = "/tmp/pyarena-api-XXXXXX", text[256] = "";
    fflush(stderr);
    int saved = dup(2), out = mkstemp(path);
    if (saved >= 0 && out >= 0) {
        unlink(path);
        dup2(out, 2);
        malloc_stats();
        dup2(saved, 2);
        ssize_t got = pread(out, text, sizeof text - 1, 0);
        text[got > 0 ? got : 0] = '\0';
    }
    if (out >= 0) close(out);
    if (saved >= 0) close(saved);
    check(strstr(text, "pyarena stats, pid") != NULL, "malloc_stats", "printed %.60s", text);
}

/* malloc_info: glibc's XML with pyarena's figures, so heap 0 is the small pools (whole
 * 256 KiB arenas) and the mmap total counts a live large block; options other than 0 return
 * EINVAL, as glibc's code does. */
static void test_malloc_info(void)
{
    void *volatile big = malloc(1 << 20);
    void *volatile small = malloc(40);
    char *xml = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&xml, &len);
    int rc = f ? malloc_info(0, f) : -2;
    if (f) fclose(f);
    unsigned long heap = 0, mmaps = 0;
    const char *h = xml ? strstr(xml, "<system type=\"current\" size=\"") : NULL;
    const char *m = xml ? strstr(xml, "<total type=\"mmap\" count=\"") : NULL;
    if (h) heap = strtoul(h + strlen("<system type=\"current\" size=\""), NULL, 10);
    if (m) mmaps = strtoul(m + strlen("<total type=\"mmap\" count=\""), NULL, 10);
    check(rc == 0 && xml && strncmp(xml, "<malloc version=\"1\">\n<heap nr=\"0\">", 30) == 0 &&
          heap > 0 && heap % (256 << 10) == 0 && mmaps >= 1 && strstr(xml, "</malloc>\n"),
          "malloc_info", "rc %d, heap 0 system size %lu, mmap count %lu: %.80s", rc, heap, mmaps,
          xml ? xml : "(no output)");
    free(xml);
    free(big);
    free(small);
    f = open_memstream(&xml, &len);
    rc = f ? malloc_info(1, f) : -2;
    if (f) fclose(f);
    free(xml);
    check(rc == EINVAL, "malloc_info_options", "malloc_info(1) = %d", rc);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_realloc();
    test_errors();
    test_zero();
    test_calloc_zeroes();
    test_aligned();
    test_misc();
    test_glibc_internals();
    test_info();
    test_malloc_info();
    printf("api checks: %d ok, %d failed\n", probe_ok, probe_failed);
    return probe_failed ? 1 : 0;
}
