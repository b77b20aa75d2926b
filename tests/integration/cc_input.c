/* cc_input.c — compiled by gcc under the preload in the pipeline case (gcc, cc1 and as all
 * inherit LD_PRELOAD); the object must come out identical to the one built without it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    const char *key;
    int value;
};

static int cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    return strcmp(x->key, y->key);
}

int cc_input_sort(struct entry *e, size_t n);
int cc_input_sort(struct entry *e, size_t n)
{
    qsort(e, n, sizeof *e, cmp);
    int sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += e[i].value * (int)(i + 1);
    printf("%d\n", sum);
    return sum;
}
