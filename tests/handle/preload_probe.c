/* preload_probe.c — run by preload_test.sh with and without LD_PRELOAD=libpyarena.so: checks
 * that handle objects come from pyarena's pools either way and that the process holds one
 * pyarena (one libpyarena.so mapped, pyarena_malloc and, under the preload, malloc resolved
 * in it). Links only -lpyarena_handle, as a user program does; prints what it found. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pyarena/handle.h"

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; printf("FAIL: " __VA_ARGS__); putchar('\n'); } } while (0)

static void traverse(void *self, pa_visit_fn visit, void *arg) { visit(*(void **)self, arg); }
static void clear(void *self) { void *c = *(void **)self; *(void **)self = NULL; pa_decref(c); }

static const char *object_of(void *sym)
{
    Dl_info info;
    return sym && dladdr(sym, &info) && info.dli_fname ? info.dli_fname : "?";
}

int main(int argc, char **argv)
{
    int preload = argc > 1 && strcmp(argv[1], "preload") == 0;
    size_t (*usable)(const void *) = (size_t (*)(const void *))dlsym(RTLD_DEFAULT, "pyarena_usable_size");
    CHECK(usable != NULL, "pyarena_usable_size not found");
    if (!usable)
        return 1;

    /* 130 bytes with the header in both layouts: pyarena's 144 class (jemalloc: 160, glibc: 136) */
    static const pa_type tracked = { "tracked", 130 - PA_HANDLE_GC_HEADER, traverse, clear, NULL };
    static const pa_type plain = { "plain", 130 - PA_HANDLE_HEADER, NULL, NULL, NULL };
    void *t = pa_new(&tracked), *p = pa_new(&plain);
    size_t ut = usable((char *)t - PA_HANDLE_GC_HEADER), up = usable((char *)p - PA_HANDLE_HEADER);
    printf("handle object of 130 bytes: usable %zu (tracked), %zu (untracked)\n", ut, up);
    CHECK(ut == 144 && up == 144, "objects are not in pyarena's pools");

    /* a cycle through the collector, to exercise free of pool memory */
    pa_incref(t);
    *(void **)t = t;   /* the self-reference owns the new reference */
    pa_decref(t);
    CHECK(pa_gc_collect(2) == 1, "cycle not collected");
    pa_decref(p);

    void *m = malloc(130);
    size_t um = malloc_usable_size(m);
    printf("malloc(130): usable %zu (%s)\n", um, preload ? "preloaded pyarena" : "not pyarena");
    CHECK(preload ? um == 144 : um != 144, "malloc is %s pyarena", preload ? "not" : "unexpectedly");
    free(m);

    const char *where = object_of(dlsym(RTLD_DEFAULT, "pyarena_malloc"));
    const char *mwhere = object_of(dlsym(RTLD_DEFAULT, "malloc"));
    printf("pyarena_malloc from %s\nmalloc from %s\n", strrchr(where, '/') ? strrchr(where, '/') + 1 : where,
           strrchr(mwhere, '/') ? strrchr(mwhere, '/') + 1 : mwhere);
    CHECK(strstr(where, "libpyarena.so") != NULL, "pyarena_malloc not in libpyarena.so");
    if (preload)
        CHECK(strcmp(where, mwhere) == 0, "malloc and pyarena_malloc from different objects");

    /* one pyarena instance: a single libpyarena.so file mapped */
    FILE *f = fopen("/proc/self/maps", "r");
    char line[4096], first[4096] = "";
    int distinct = 0;
    while (f && fgets(line, sizeof line, f)) {
        char *path = strchr(line, '/');
        if (!path || !strstr(path, "/libpyarena.so"))
            continue;
        path[strcspn(path, "\n")] = 0;
        if (!first[0]) {
            snprintf(first, sizeof first, "%s", path);
            distinct = 1;
        } else if (strcmp(first, path) != 0) {
            distinct++;
        }
    }
    if (f)
        fclose(f);
    printf("libpyarena.so files mapped: %d\n", distinct);
    CHECK(distinct == 1, "expected exactly one libpyarena.so");
    printf("%s\n", failures ? "probe: FAILED" : "probe: ok");
    return failures != 0;
}
