/* handle_common.h — for the benchmark programs that link libpyarena_handle (and so
 * libpyarena.so): the library check the runner reads. */
#ifndef BENCH_HANDLE_COMMON_H
#define BENCH_HANDLE_COMMON_H

#include "common.h"

/* Prints the libs line of emit_libs() and {"pyarena_path": ...}: the one file named
 * libpyarena.so that is mapped. Two different ones would be two allocator instances (the
 * preloaded copy and the one the program links), which the handle library must never see:
 * that is a failure. */
static inline void emit_handle_libs(void)
{
    char line[4096], path[4096] = "";
    FILE *f = fopen("/proc/self/maps", "r");
    if (f == NULL)
        die("cannot read /proc/self/maps");
    while (fgets(line, sizeof line, f)) {
        char *p = strchr(line, '/'), *name;
        if (p == NULL)
            continue;
        p[strcspn(p, "\n")] = '\0';
        name = strrchr(p, '/') + 1;
        if (strcmp(name, "libpyarena.so") != 0)
            continue;
        if (path[0] && strcmp(path, p) != 0)
            die("two copies of libpyarena.so are mapped: %s and %s", path, p);
        snprintf(path, sizeof path, "%s", p);
    }
    fclose(f);
    if (!path[0])
        die("libpyarena.so is not mapped");
    emit_libs();
    printf("{\"pyarena_path\": \"%s\"}\n", path);
    fflush(stdout);
}

#endif
