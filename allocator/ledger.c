/* ledger.c — under PYARENA_CHECK=2, the address of every block the large path has handed out,
 * so that free, realloc and malloc_usable_size can tell a live large block from a freed one,
 * from a pointer into one, and from a pointer no allocator gave out: jemalloc's own lookup
 * assumes the pointer valid (and faults, or frees a block twice, when it is not).
 *
 * An open-addressed table of words, linear probing, in memory of its own (never malloc's):
 *
 *   slot = 0        empty: ends every probe
 *   slot = p        p is live (blocks are 16-byte aligned, so bit 0 is free for the state)
 *   slot = p | 1    p was freed; p's next handout turns it live again in place
 *
 * Freed entries are the table's tombstones, and what lets a second free say "double free"
 * rather than "invalid pointer". A rehash, when live and freed entries fill half the table or
 * live ones fall under a sixteenth of it, keeps only the live ones (its new size is four to
 * eight times their count), so the table stays within 16 to 128 bytes per live block (4 KiB
 * at least) whatever the program frees; a freed block forgotten so is still caught, as an
 * invalid pointer.
 *
 * One mutex, a leaf: held for a probe or a rehash, never while jemalloc or another lock of
 * ours is called; fork.c takes it last and gives it back first. The forking thread, which
 * holds it from our prepare handler to our parent or child handler, works without it. */
#include "internal.h"

#define LEDGER_MIN_SLOTS ((size_t)4096 / sizeof(uintptr_t))

PA_HIDDEN bool pa_ledger_on;

static pthread_mutex_t ledger_lock = PTHREAD_MUTEX_INITIALIZER;
static uintptr_t      *slots;       /* NULL until the first entry */
static size_t          nslots;      /* a power of two */
static size_t          nused;       /* live and freed entries */
static size_t          nlive;

/* Called once, from pa_init right after the settings are read and before anything of ours
 * can allocate; without_handouts: the large path has handed out nothing yet (a block handed
 * out before the ledger would later look foreign, so a late start would be false alarms). */
void pa_ledger_start(bool without_handouts)
{
    pa_ledger_on = pa_config.check >= 2 && without_handouts;
}

static void lock(void)
{
    if (!pa_tls_in_fork)
        pthread_mutex_lock(&ledger_lock);
}

static void unlock(void)
{
    if (!pa_tls_in_fork)
        pthread_mutex_unlock(&ledger_lock);
}

static size_t home(uintptr_t p, size_t n)
{
    return (size_t)(((p >> 4) * 0x9e3779b97f4a7c15u) >> 32) & (n - 1);
}

/* The slot holding p (live or freed), or else the empty slot that ends its probe. */
static uintptr_t *find(uintptr_t *t, size_t n, uintptr_t p)
{
    for (size_t i = home(p, n);; i = (i + 1) & (n - 1))
        if (t[i] == 0 || (t[i] & ~(uintptr_t)1) == p)
            return &t[i];
}

/* A table of at least four slots per live entry, holding those only. False: no memory (the
 * old table stays). */
static bool rehash(void)
{
    size_t n = LEDGER_MIN_SLOTS;
    while (n < 4 * (nlive + 1))
        n *= 2;
    uintptr_t *t = pa_os_reserve(n * sizeof *t, 4096);
    if (t == NULL)
        return false;
    for (size_t i = 0; i < nslots; i++)
        if (slots[i] != 0 && !(slots[i] & 1))
            *find(t, n, slots[i]) = slots[i];
    if (slots != NULL)
        pa_os_release(slots, nslots * sizeof *slots);
    slots = t;
    nslots = n;
    nused = nlive;
    return true;
}

/* p has just been handed out by jemalloc. False: no memory for the entry. */
bool pa_ledger_add(const void *ptr)
{
    uintptr_t p = (uintptr_t)ptr;
    lock();
    bool ok = (nused + 1) * 2 <= nslots || rehash();
    if (ok) {
        uintptr_t *s = find(slots, nslots, p);
        if (*s == p)
            pa_os_fatal("jemalloc handed out a large block that is still live (corrupted heap)");
        nused += *s == 0;
        nlive++;
        *s = p;
    }
    unlock();
    return ok;
}

/* ptr must be a live large block; free (take) turns its entry freed. */
static void check(const void *ptr, const char *fn, bool take)
{
    uintptr_t p = (uintptr_t)ptr, *s;
    lock();
    s = slots ? find(slots, nslots, p) : NULL;
    bool live = s && *s == p, freed = s && *s == (p | 1);
    if (live && take) {
        *s = p | 1;
        nlive--;
        if (nslots > LEDGER_MIN_SLOTS && nlive * 16 < nslots)
            rehash();   /* smaller; without memory for it, the table stays as it is */
    }
    unlock();
    if (freed)
        pa_check_fail("double free", ptr, fn, PA_LARGE_BLOCK);
    if (!live)
        pa_check_fail("invalid pointer", ptr, fn, 0);
}

/* Slots of the table: 0 before the first entry (for tests). */
size_t pa_ledger_capacity(void)
{
    lock();
    size_t n = nslots;
    unlock();
    return n;
}

void pa_ledger_check(const void *ptr, const char *fn) { check(ptr, fn, false); }
void pa_ledger_take(const void *ptr, const char *fn)  { check(ptr, fn, true); }

void pa_ledger_fork_prepare(void) { pthread_mutex_lock(&ledger_lock); }
void pa_ledger_fork_parent(void)  { pthread_mutex_unlock(&ledger_lock); }
void pa_ledger_fork_child(void)   { pthread_mutex_init(&ledger_lock, NULL); }
