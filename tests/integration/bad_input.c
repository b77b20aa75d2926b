/* bad_input.c — one misuse per run, chosen by argv[1], for the runner to check that pyarena
 * aborts with the precise message (double free, invalid pointers, realloc of a freed block) or,
 * with PYARENA_CHECK=2, catches a write after free at the next allocation. */
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
    } else if (strcmp(mode, "uaf") == 0) {
        free(p);
        sink = p;
        ((char *)sink)[30] = 'x';
        sink = malloc(40);
    }
    puts("survived");
    return 0;
}
