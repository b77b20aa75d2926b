/* arena_path.c — small requests really take pyarena's arena path under the preload: usable
 * sizes are the 16-byte classes (malloc(130) -> 144), every small block is 16-byte aligned,
 * consecutive blocks of one class share a 4 KiB pool page, and malloc & co. resolve to
 * libpyarena.so (dladdr). Prints "OK <check>" / "FAIL <check>: why"; the runner reads them. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "probe.h"


static const char *lib_of(void *addr)
{
    Dl_info info;
    if (addr == NULL || dladdr(addr, &info) == 0 || info.dli_fname == NULL)
        return "?";
    const char *slash = strrchr(info.dli_fname, '/');
    return slash ? slash + 1 : info.dli_fname;
}

int main(void)
{
    /* malloc(130) lands in the 144-byte class */
    void *p130 = malloc(130);
    size_t u = malloc_usable_size(p130);
    check(u == 144, "usable_130", "malloc_usable_size(malloc(130)) = %zu, want 144", u);
    free(p130);

    /* every size 1..512: usable size is the size rounded up to 16, block 16-byte aligned */
    int bad_usable = 0, bad_align = 0;
    size_t first_bad = 0, first_bad_u = 0;
    for (size_t n = 1; n <= 512; n++) {
        void *v[4];
        for (int k = 0; k < 4; k++) {
            v[k] = malloc(n);
            if (v[k] == NULL || ((uintptr_t)v[k] & 15) != 0)
                bad_align++;
            size_t us = v[k] ? malloc_usable_size(v[k]) : 0;
            if (us != ((n + 15) & ~(size_t)15)) {
                if (!bad_usable++) {
                    first_bad = n;
                    first_bad_u = us;
                }
            }
        }
        for (int k = 0; k < 4; k++)
            free(v[k]);
    }
    check(bad_usable == 0, "usable_classes", "%d blocks off their class, first malloc(%zu) -> %zu",
           bad_usable, first_bad, first_bad_u);
    check(bad_align == 0, "align16", "%d small blocks not 16-byte aligned", bad_align);

    /* consecutive blocks of one (otherwise unused) class share a page, class-size apart */
    enum { N = 8 };
    int sizes[] = { 208, 336, 496 };
    for (int s = 0; s < 3; s++) {
        char *v[N];
        int same_page = 0, spaced = 0;
        for (int k = 0; k < N; k++)
            v[k] = malloc((size_t)sizes[s]);
        for (int k = 0; k + 1 < N; k++) {
            if (((uintptr_t)v[k] >> 12) == ((uintptr_t)v[k + 1] >> 12)) {
                same_page++;
                intptr_t d = v[k + 1] - v[k];
                if (d < 0)
                    d = -d;
                spaced += d % sizes[s] == 0;
            }
        }
        char name[32];
        snprintf(name, sizeof name, "same_page_%d", sizes[s]);
        /* at most one pool change among 8 fresh blocks (a pool holds >= 8 of these) */
        check(same_page >= N - 2 && spaced == same_page, name,
               "%d of %d consecutive pairs in one 4 KiB page, %d class-size apart "
               "(%p %p %p %p)", same_page, N - 1, spaced, (void *)v[0], (void *)v[1],
               (void *)v[2], (void *)v[3]);
        for (int k = 0; k < N; k++)
            free(v[k]);
    }

    /* a large request is not rounded to a small class */
    void *big = malloc(513);
    u = malloc_usable_size(big);
    check(u >= 513, "usable_513", "malloc_usable_size(malloc(513)) = %zu", u);
    free(big);

    /* the malloc family resolves to the preloaded library */
    const char *names[] = { "malloc", "free", "calloc", "realloc", "posix_memalign",
                            "aligned_alloc", "memalign", "malloc_usable_size" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *lib = lib_of(dlsym(RTLD_DEFAULT, names[i]));
        char name[64];
        snprintf(name, sizeof name, "resolve_%s", names[i]);
        check(strcmp(lib, "libpyarena.so") == 0, name, "%s resolves to %s", names[i], lib);
    }
    /* the address this executable actually calls through its GOT */
    void *(*volatile m)(size_t) = malloc;
    const char *lib = lib_of((void *)m);
    check(strcmp(lib, "libpyarena.so") == 0, "got_malloc", "&malloc is in %s", lib);

    printf("arena_path %s\n", probe_failed ? "BAD" : "OK");
    return probe_failed ? 1 : 0;
}
