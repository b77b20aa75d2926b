/* bad_input.c — one misuse per run, chosen by argv[1], for the runner to check that pyarena
 * aborts with the precise message (double free, invalid pointers, realloc of a freed block) or,
 * with PYARENA_CHECK=2, catches a write after free at the next allocation. The large path's
 * misuses take the block's size (or alignment, for large_aligned) from argv[2]. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* every misuse below is on purpose */
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"

static void *volatile sink;   /* keeps the compiler from reasoning about the misuse */

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "";
    size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 5000;
    char *p = malloc(40), *keep = malloc(40);
    sink = keep;
    printf("block %p\n", (void *)p);
    fflush(stdout);
    if (strcmp(mode, "double") == 0) {
        free(p);
        free(sink == keep ? p : NULL);
    } else if (strcmp(mode, "interior") == 0) {
        sink = p + 16;
        free(sink);
    } else if (strcmp(mode, "realloc") == 0) {
        free(p);
        sink = realloc(p, 20);
    } else if (strcmp(mode, "large") == 0) {
        char *l = malloc(5000);
        sink = l + 8;
        free(sink);
    } else if (strncmp(mode, "large_", 6) == 0) {
        /* a block that was written to, as most are, and one that was not */
        char *l = strcmp(mode, "large_aligned") == 0 ? aligned_alloc(n, 100) : malloc(n);
        if (strcmp(mode, "large_untouched") != 0)
            memset(l, 'x', 100);
        printf("large %p\n", (void *)l);
        fflush(stdout);
        if (strcmp(mode, "large_interior") == 0) {   /* caught under PYARENA_CHECK=2 only */
            sink = l + 16;
            free(sink);
        }
        free(l);
        if (strcmp(mode, "large_realloc") == 0)
            sink = realloc(sink == keep ? l : NULL, n + 1000);
        else if (strcmp(mode, "large_usable") == 0)
            printf("usable %zu\n", malloc_usable_size(sink == keep ? l : NULL));
        else
            free(sink == keep ? l : NULL);
    } else if (strcmp(mode, "uaf") == 0) {
        free(p);
        sink = p;
        ((char *)sink)[30] = 'x';
        sink = malloc(40);
    }
    puts("survived");
    return 0;
}
