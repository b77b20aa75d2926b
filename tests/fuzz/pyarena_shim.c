/* pyarena_shim.c — fuzz builds only: the pyarena_* entry points that libpyarena_handle calls,
 * defined on the allocator's internal paths (preload/malloc.c is not linked into a fuzzer), so the
 * fuzzed handle code allocates from the real pools. Frees go through a hook (the harness's view
 * of which objects die) and then a short quarantine poisoned for ASan, so that a block touched
 * after its free is reported even though pyarena's pools are invisible to ASan. */
#include <stddef.h>
#include <stdlib.h>
#include <unistd.h>

#include <sanitizer/asan_interface.h>

#include "alloc.h"
#include "pyarena.h"
#include "snapshot.h"

/* Shared with fuzz_handle.c (declared there too: tests/fuzz has no header of its own). */
extern void (*pyarena_shim_free_hook)(void *block);
void pyarena_shim_flush(void);

void (*pyarena_shim_free_hook)(void *block);

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SHIM_ASAN 1
#endif
#endif
#ifndef SHIM_ASAN
#define SHIM_ASAN 0
#endif

/* Freed blocks wait here, poisoned, before pa_free takes them; FIFO. */
#define SHIM_QUARANTINE 512
static void  *shim_q[SHIM_QUARANTINE];
static size_t shim_q_size[SHIM_QUARANTINE];
static size_t shim_q_head, shim_q_len;

static void shim_release(size_t i)
{
    ASAN_UNPOISON_MEMORY_REGION(shim_q[i], shim_q_size[i]);
    pa_free(shim_q[i]);
    shim_q[i] = NULL;
}

void pyarena_shim_flush(void)
{
    while (shim_q_len) {
        shim_release(shim_q_head);
        shim_q_head = (shim_q_head + 1) % SHIM_QUARANTINE;
        shim_q_len--;
    }
}

void *pyarena_malloc(size_t n)
{
    return pa_malloc(n);
}

void pyarena_free(void *ptr)
{
    if (ptr == NULL)
        return;
#if SHIM_ASAN
    if (__asan_address_is_poisoned(ptr)) {
        static const char msg[] = "pyarena_shim: free of a block already freed (in quarantine)\n";
        (void)!write(2, msg, sizeof msg - 1);
        abort();
    }
#endif
    if (pyarena_shim_free_hook)
        pyarena_shim_free_hook(ptr);
    if (!SHIM_ASAN) {
        pa_free(ptr);
        return;
    }
    if (shim_q_len == SHIM_QUARANTINE) {
        shim_release(shim_q_head);
        shim_q_head = (shim_q_head + 1) % SHIM_QUARANTINE;
        shim_q_len--;
    }
    size_t i = (shim_q_head + shim_q_len) % SHIM_QUARANTINE;
    shim_q[i] = ptr;
    shim_q_size[i] = pa_api_usable_size(ptr);
    shim_q_len++;
    ASAN_POISON_MEMORY_REGION(ptr, shim_q_size[i]);
}

void *pyarena_calloc(size_t count, size_t size)
{
    return pa_api_calloc(count, size);
}

void *pyarena_realloc(void *ptr, size_t n)
{
    return pa_api_realloc(ptr, n);
}

size_t pyarena_usable_size(const void *ptr)
{
    return pa_api_usable_size(ptr);
}

int pyarena_stats_add_section(const char *key, pyarena_stats_section_fn fn, void *arg)
{
    return pa_stats_add_section(key, fn, arg);
}
