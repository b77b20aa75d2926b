/* stats_link.c — a program linked with -lpyarena calls pyarena_stats_print itself. */
#include <pyarena.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    void *p[64];
    for (int i = 0; i < 64; i++)
        p[i] = pyarena_malloc(300);
    if (pyarena_stats_print(1, PYARENA_STATS_JSON) != 0)
        return 1;
    if (pyarena_stats_print(1, 7) != -1)    /* bad format: EINVAL */
        return 2;
    for (int i = 0; i < 64; i++)
        pyarena_free(p[i]);
    return 0;
}
