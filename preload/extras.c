/* extras.c — the glibc extensions programs call: malloc_trim gives memory back, mallinfo2 /
 * mallinfo / malloc_stats / malloc_info report pyarena's own figures (small pools) plus
 * jemalloc's (large path), mallopt is accepted and ignored (pyarena's knobs are PYARENA_*
 * settings). */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "pyarena.h"
#include "snapshot.h"

PA_EXPORT int malloc_trim(size_t pad)
{
    return pa_api_trim();
}

/* mallinfo2's figures from a snapshot and jemalloc's totals; malloc_info reports them too. */
static struct mallinfo2 info_of(const pa_snapshot *s, size_t je_alloc, size_t je_mapped)
{
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = s->arena_bytes;                 /* small-object arenas */
    mi.hblkhd = je_mapped;                     /* large path: jemalloc's mappings */
    mi.uordblks = s->block_bytes + je_alloc;   /* bytes in use, both paths */
    mi.fordblks = s->free_bytes + s->pools_free * PA_POOL_SIZE;
    mi.ordblks = s->pools_free;
    mi.usmblks = s->arenas.peak * PA_ARENA_SIZE;
    return mi;
}

PA_EXPORT struct mallinfo2 mallinfo2(void)
{
    pa_snapshot s;
    pa_snapshot_take(&s);
    size_t je_alloc, je_mapped;
    pa_large_totals(&je_alloc, &je_mapped);
    return info_of(&s, je_alloc, je_mapped);
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

/* The lines that close a heap of glibc's XML and the whole of it: its free chunks, its mmaps
 * (the whole only: mmaps NULL for a heap), and its system sizes. */
static void xml_totals(FILE *fp, size_t free_count, size_t free_bytes,
                       const pa_large_snapshot *mmaps, size_t current, size_t max)
{
    fprintf(fp, "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
                "<total type=\"rest\" count=\"%zu\" size=\"%zu\"/>\n", free_count, free_bytes);
    if (mmaps)
        fprintf(fp, "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n", mmaps->in_use,
                mmaps->bytes);
    fprintf(fp, "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n"
                "<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n",
            current, max, current, current);
}

/* glibc's XML, its places filled with pyarena's figures (mallinfo2's): the small pools are
 * heap 0, their free blocks its free chunks, one size range per class, and their empty pools
 * its unsorted chunks; the large path is the mmap total (jemalloc's live blocks), and
 * jemalloc's mappings count in the whole process's system size. Called by the program, not
 * from inside the allocator, so stdio (which may allocate) is allowed here; the snapshots are
 * taken before the first write. */
PA_EXPORT int malloc_info(int options, FILE *fp)
{
    if (options != 0)
        return EINVAL;   /* as glibc's code does (its manual page says -1 and errno) */
    pa_snapshot s;
    pa_snapshot_take(&s);
    pa_large_snapshot l;
    pa_large_snapshot_take(&l);
    struct mallinfo2 mi = info_of(&s, l.bytes, l.mapped);
    size_t free_count = mi.ordblks;   /* the empty pools, and below every free block */
    fputs("<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n", fp);
    for (size_t c = 0; c < PA_NCLASSES; c++) {
        const pa_class_snapshot *k = &s.cls[c];
        free_count += k->free;
        if (k->free)
            fprintf(fp, "  <size from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n",
                    k->size - PA_ALIGN + 1, k->size, k->free * k->size, k->free);
    }
    if (s.pools_free)
        fprintf(fp, "  <unsorted from=\"%zu\" to=\"%zu\" total=\"%zu\" count=\"%zu\"/>\n",
                PA_POOL_SIZE, PA_POOL_SIZE, s.pools_free * PA_POOL_SIZE, s.pools_free);
    fputs("</sizes>\n", fp);
    xml_totals(fp, free_count, mi.fordblks, NULL, mi.arena, mi.usmblks);
    fputs("</heap>\n", fp);
    xml_totals(fp, free_count, mi.fordblks, &l, mi.arena + mi.hblkhd, mi.usmblks + mi.hblkhd);
    fputs("</malloc>\n", fp);
    return 0;   /* as glibc's: a write error stays on the stream, for the caller's ferror */
}

PA_EXPORT int mallopt(int param, int value)
{
    return 1;
}
