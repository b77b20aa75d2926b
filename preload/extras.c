/* extras.c — the glibc extensions programs call: malloc_trim gives memory back, mallinfo2 /
 * mallinfo / malloc_stats report pyarena's own figures (small pools) plus jemalloc's (large
 * path), mallopt is accepted and ignored (pyarena's knobs are PYARENA_* settings). */
#define _GNU_SOURCE
#include <malloc.h>
#include <string.h>

#include "alloc.h"
#include "pyarena.h"
#include "snapshot.h"

PA_EXPORT int malloc_trim(size_t pad)
{
    return pa_api_trim();
}

PA_EXPORT struct mallinfo2 mallinfo2(void)
{
    pa_snapshot s;
    pa_snapshot_take(&s);
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof mi);
    size_t je_alloc, je_mapped;
    pa_large_totals(&je_alloc, &je_mapped);
    mi.arena = s.arena_bytes;                 /* small-object arenas */
    mi.hblkhd = je_mapped;                    /* large path: jemalloc's mappings */
    mi.uordblks = s.block_bytes + je_alloc;   /* bytes in use, both paths */
    mi.fordblks = s.free_bytes + s.pools_free * PA_POOL_SIZE;
    mi.ordblks = s.pools_free;
    mi.usmblks = s.arenas.peak * PA_ARENA_SIZE;
    return mi;
}

static int clamp_int(size_t v)
{
    return v > (size_t)__INT_MAX__ ? __INT_MAX__ : (int)v;
}

PA_EXPORT struct mallinfo mallinfo(void)
{
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo mi = {
        .arena = clamp_int(m2.arena), .ordblks = clamp_int(m2.ordblks),
        .hblkhd = clamp_int(m2.hblkhd), .usmblks = clamp_int(m2.usmblks),
        .uordblks = clamp_int(m2.uordblks), .fordblks = clamp_int(m2.fordblks),
    };
    return mi;
}

/* glibc prints its statistics on stderr; pyarena prints its text report there. */
PA_EXPORT void malloc_stats(void)
{
    pa_stats_write(2, PYARENA_STATS_TEXT);
}

PA_EXPORT int mallopt(int param, int value)
{
    return 1;
}
