/* early_ctor.c — a library whose constructor allocates (malloc, calloc, realloc, free, and
 * dlsym, which allocates itself), preloaded before and after libpyarena.so: the very first
 * malloc of the process may come from here, before pyarena's own constructor ran. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void early(void)
{
    char *p = malloc(100), *q = calloc(10, 10);
    int ok = p && q && q[99] == 0;
    memset(p, 7, 100);
    p = realloc(p, 1000);
    ok = ok && p && p[99] == 7;
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    ok = ok && sym != NULL && malloc_usable_size(q) == 112;   /* pyarena's 112-byte class */
    free(p);
    free(q);
    const char *msg = ok ? "early ctor ok\n" : "early ctor BAD\n";
    write(1, msg, strlen(msg));
}
