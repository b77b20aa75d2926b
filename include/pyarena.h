/* pyarena — public API of libpyarena.so.
 *
 * Most programs never include this: LD_PRELOAD=libpyarena.so replaces malloc and friends.
 * Programs that link -lpyarena explicitly (or libraries such as libpyarena_handle that must
 * reach the one pyarena instance whether or not the process runs under the preload) use the
 * pyarena_* entry points below; they are the same allocator as the interposed malloc family. */
#ifndef PYARENA_H
#define PYARENA_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PYARENA_SMALL_MAX 512   /* requests up to this many bytes are served from arena pools */

/* Same semantics as malloc, free, calloc, realloc and malloc_usable_size; pointers from these
 * and from the interposed malloc family may be mixed freely. */
void  *pyarena_malloc(size_t size);
void   pyarena_free(void *ptr);
void  *pyarena_calloc(size_t count, size_t size);
void  *pyarena_realloc(void *ptr, size_t size);
size_t pyarena_usable_size(const void *ptr);

/* Formats for pyarena_stats_print. */
#define PYARENA_STATS_TEXT 0
#define PYARENA_STATS_JSON 1

/* Writes the heap report (see README, "Stats") to fd. Returns 0, or -1 with errno set. */
int pyarena_stats_print(int fd, int format);

/* Adds a section to every later report (libpyarena_handle adds the collector's figures).
 * fn writes straight to fd, without malloc: in PYARENA_STATS_TEXT, whole lines; in
 * PYARENA_STATS_JSON, exactly one JSON value, which the report places under "key" in its
 * top-level object. Returns 0, or -1 with errno EINVAL (no fn or key) or ENOSPC (8 already). */
typedef void (*pyarena_stats_section_fn)(int fd, int format, void *arg);
int pyarena_stats_add_section(const char *key, pyarena_stats_section_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif
