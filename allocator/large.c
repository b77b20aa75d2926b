/* large.c — the large path: requests above 512 bytes, or aligned above 16, go to the jemalloc
 * linked in: to its own malloc, calloc, posix_memalign and free (renamed pa_jemalloc_*, so that
 * the program's malloc symbols stay pyarena's) once the path is plain, else to mallocx; resizes
 * to rallocx or xallocx. jemalloc is never handed size 0 (undefined for the *allocx
 * functions). */
#include <errno.h>
#include <jemalloc/jemalloc.h>
#include <string.h>

#include "alloc.h"

/* jemalloc's own malloc, calloc, free and posix_memalign, renamed in the copy of its archive
 * that is linked in (Makefile): its short ways through the thread cache, where mallocx and
 * dallocx take the general one. */
void *pa_jemalloc_malloc(size_t size);
void *pa_jemalloc_calloc(size_t count, size_t size);
void  pa_jemalloc_free(void *ptr);
int   pa_jemalloc_posix_memalign(void **out, size_t align, size_t size);

/* jemalloc's options before MALLOC_CONF, which overrides any of them (jemalloc reads this
 * symbol, weak in its archive, then /etc/malloc.conf, then the environment).
 *
 * lg_extent_max_active_fit (jemalloc's default 6): jemalloc cuts a slab from a free extent
 * at most 2^6 times the slab's size. The classes with 20 KiB slabs (577-640, 1153-1280,
 * 2305-2560, 4609-5120 and 8193-10240 bytes) then cannot reuse the 4 MiB extent a freed batch
 * of them merges into: the next batch takes fresh pages while that extent waits for the
 * decay, which purges it, and every round faults its pages in again. Batches of 4 MiB freed
 * last-in first-out, 40 rounds (integration large_reuse): 38-40k page faults after the first
 * round at each of those sizes and a peak 85 MiB above the start; at 12, none and 4.4 MiB.
 * In time, 3 alternating runs of batches freed last-in first-out, ns per pair: 640 B 379 to
 * 51, 1280 B 795 to 71, 2560 B 1435 to 89, 5120 B 2734 to 131; in random order, where the
 * extents do not merge so, 2560 B 260 to 149 and the other sizes within the noise. 12 keeps
 * the reuse at batches of 256 MiB (2560 B, 4 rounds: 1.8 us per pair at 12, 16 and 63
 * alike, 2.4 us at 6). The cost jemalloc names, big free extents split for small slabs,
 * spreads the address space; freed slabs still go back to the OS as before. */
const char *malloc_conf = "lg_extent_max_active_fit:12";

/* The decay's tick (below) costs a program nothing until its threads have taken
 * PA_LARGE_DECAY_ARM_BYTES from this path in all: a program with no large spike to give back
 * keeps jemalloc's bookkeeping small. The count is shared only until then (a realloc counts
 * its whole new size). */
static _Atomic size_t pa_large_taken;
static _Atomic bool pa_large_armed;

/* Set once armed, while no restart is owed and there is no ledger: then a request of any
 * alignment has nothing to count or check on its way in, and takes a short way (plain_for,
 * below) to jemalloc's malloc, calloc or posix_memalign. Only the long way sets it (at its
 * end, where the arming and the restart it may have done are behind it), and only our fork
 * child handler clears it. */
static _Atomic bool pa_large_plain;
static _Atomic bool pa_large_restart_owed;

static inline void note_taken(size_t size)
{
    if (!atomic_load_explicit(&pa_large_armed, memory_order_relaxed) &&
        atomic_fetch_add_explicit(&pa_large_taken, size, memory_order_relaxed) + size >=
            PA_LARGE_DECAY_ARM_BYTES)
        atomic_store_explicit(&pa_large_armed, true, memory_order_relaxed);
}

/* jemalloc turns its background threads off in a forked child (its postfork handler), so a
 * child that goes on allocating and then idles, as a PostgreSQL backend or a prefork server's
 * worker does, kept its freed large pages where its parent gave them back. When MALLOC_CONF
 * asked for them, our child handler owes the child a restart, paid on its first large request:
 * not in the handler, before jemalloc's own has run, and not at all in a child that makes none
 * (one that only execs, or only makes small requests: a shell's, a build tool's). The option
 * is read from jemalloc's variable (read-only once jemalloc has started; weak, so a jemalloc
 * without it means none): a mallctl would cost every child that forks from a program which
 * never made one ~150 KiB of jemalloc's bookkeeping.
 *
 * The mallctl holds jemalloc's ctl lock while it creates the thread, and pthread_create may
 * calloc (the new thread's TLS table) through us: tls_restarting keeps the decay tick, whose
 * mallctl would wait for that lock in this very thread, from running meanwhile. jemalloc
 * marks its threads enabled before it creates one; should that fail (a process or cgroup
 * limit), they would stay enabled with none running, and jemalloc then never purges on its
 * own calls: so a failure turns them off again. */
extern bool je_opt_background_thread __attribute__((weak));
static __thread bool tls_restarting __attribute__((tls_model("initial-exec")));

void pa_large_fork_child(void)
{
    if (&je_opt_background_thread != NULL && je_opt_background_thread) {
        atomic_store_explicit(&pa_large_restart_owed, true, memory_order_relaxed);
        atomic_store_explicit(&pa_large_plain, false, memory_order_relaxed);
    }
}

static void restart_background_threads(void)
{
    if (pa_tls_in_fork ||
        !atomic_exchange_explicit(&pa_large_restart_owed, false, memory_order_relaxed))
        return;
    bool on = true, off = false;   /* no lock of ours is held */
    tls_restarting = true;
    if (mallctl("background_thread", NULL, NULL, &on, sizeof on) != 0)
        mallctl("background_thread", NULL, NULL, &off, sizeof off);
    tls_restarting = false;
}

static __attribute__((noinline)) void *large_alloc(size_t size, size_t align, bool zero)
{
    if (unlikely(atomic_load_explicit(&pa_large_restart_owed, memory_order_relaxed)))
        restart_background_threads();
    if (size > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    int flags = zero ? MALLOCX_ZERO : 0;
    if (align > PA_ALIGN)
        flags |= MALLOCX_LG_ALIGN(__builtin_ctzl(align));
    size_t n = size ? size : 1;
    void *p = align > PA_ALIGN ? mallocx(n, flags)
            : zero             ? pa_jemalloc_calloc(1, n)
                               : pa_jemalloc_malloc(n);
    if (p == NULL || (unlikely(pa_ledger_on) && !pa_ledger_add(p))) {
        if (p != NULL)
            dallocx(p, 0);
        errno = ENOMEM;
        return NULL;
    }
    if (!zero)   /* the free mark it may carry from its last life (a zeroed block has none) */
        ((pa_block *)p)->mark = 0;
    note_taken(n);
    if (!atomic_load_explicit(&pa_large_plain, memory_order_relaxed) &&
        atomic_load_explicit(&pa_large_armed, memory_order_relaxed) &&
        !atomic_load_explicit(&pa_large_restart_owed, memory_order_relaxed) && !pa_ledger_on)
        atomic_store_explicit(&pa_large_plain, true, memory_order_relaxed);
    return p;
}

/* The short ways below, taken while the path is plain, for any size but 0 (the *allocx
 * functions' undefined case, and glibc's minimum block, both left to large_alloc) and sizes
 * beyond PTRDIFF_MAX (which fail with ENOMEM there). */
static inline __attribute__((always_inline)) bool plain_for(size_t size)
{
    return likely(atomic_load_explicit(&pa_large_plain, memory_order_relaxed)) &&
           likely(size - 1 < PTRDIFF_MAX);
}

/* malloc's way here: one test and a call on top of jemalloc's own malloc. */
void *pa_large_malloc(size_t size)
{
    if (plain_for(size)) {
        pa_block *b = pa_jemalloc_malloc(size);   /* which sets errno when it fails */
        if (likely(b != NULL))
            b->mark = 0;   /* the free mark it may carry from its last life */
        return b;
    }
    return large_alloc(size, 0, false);
}

/* calloc's: the same, through jemalloc's calloc (a zeroed block carries no mark). */
void *pa_large_calloc(size_t size)
{
    if (plain_for(size))
        return pa_jemalloc_calloc(1, size);
    return large_alloc(size, 0, true);
}

/* Any alignment (a power of two). Above PA_ALIGN the short way is jemalloc's own
 * posix_memalign: its mallocx costs 26 instructions more per request, at 64-byte aligned 256
 * bytes. That leaves behind whatever errno a failed system call set, so a failure sets ENOMEM
 * here, as the long way does (pa_api_posix_memalign puts the caller's errno back). */
void *pa_large_alloc(size_t size, size_t align)
{
    if (align <= PA_ALIGN && size != 0)
        return pa_large_malloc(size);
    pa_block *b;
    if (align > PA_ALIGN && plain_for(size)) {
        if (unlikely(pa_jemalloc_posix_memalign((void **)&b, align, size) != 0)) {
            errno = ENOMEM;
            return NULL;
        }
        b->mark = 0;   /* the free mark it may carry from its last life */
        return b;
    }
    return large_alloc(size, align, false);
}

bool pa_large_none_yet(void)
{
    return atomic_load(&pa_large_taken) == 0 && !atomic_load(&pa_large_armed);
}

/* Set by every free on this path (and every realloc, which may free), cleared by the decay's
 * tick below: only then has jemalloc pages to decay. A load first, so that the line stays
 * shared while the flag is up. */
static _Atomic bool pa_large_freed;

static inline void note_freed(void)
{
    if (!atomic_load_explicit(&pa_large_freed, memory_order_relaxed))
        atomic_store_explicit(&pa_large_freed, true, memory_order_relaxed);
}

/* The mark (pa_large_mark) lets pa_check_large catch a second free: jemalloc writes nothing
 * into the blocks it keeps for reuse. */
static inline __attribute__((always_inline)) void give_back(pa_block *b, uintptr_t mark)
{
    note_freed();
    b->mark = mark;
    pa_jemalloc_free(b);
}

void pa_large_free(void *ptr)
{
    if (unlikely(pa_ledger_on))
        pa_ledger_take(ptr, "free");
    give_back(ptr, pa_large_mark(ptr));
}

/* free's way for a pointer outside the small path's regions: NULL, a block of this path, or
 * nobody's. pa_check_large's level-1 tests (16-byte aligned, no free mark) come inline, so that
 * a block of jemalloc's thread cache costs a few instructions on top of its own free; a
 * pointer that fails one, and any under the ledger, takes pa_check_large itself first, which
 * also knows level 0 (no checks) and the time before the secret is chosen. */
void pa_large_free_any(void *ptr)
{
    pa_block *b = ptr;
    if (b == NULL)
        return;
    uintptr_t mark = pa_large_mark(b);
    if (unlikely(pa_ledger_on || ((uintptr_t)b & (PA_ALIGN - 1)) || b->mark == mark)) {
        pa_check_large(b, "free");
        pa_large_free(b);
        return;
    }
    give_back(b, mark);
}

/* Under the ledger a block that cannot be resized in place moves by hand, so that the old one
 * is freed where the ledger sees it (rallocx would free it inside jemalloc) and a failure
 * leaves it as it was. */
void *pa_large_realloc(void *ptr, size_t size)
{
    if (unlikely(pa_ledger_on)) {
        size_t in_place = size <= PTRDIFF_MAX ? xallocx(ptr, size, 0, 0) : 0;
        /* xallocx answers the old size when it will not shrink: then the block moves too */
        if (in_place >= size && in_place <= nallocx(size, 0)) {
            note_freed();
            note_taken(size);
            return ptr;
        }
        void *q = pa_large_alloc(size, 0);
        if (q != NULL) {
            size_t old = sallocx(ptr, 0);
            memcpy(q, ptr, old < size ? old : size);
            pa_large_free(ptr);
        }
        return q;
    }
    if (size > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    note_freed();
    void *p = rallocx(ptr, size ? size : 1, 0);
    if (p == NULL)
        errno = ENOMEM;
    else
        note_taken(size);
    return p;
}

size_t pa_large_usable(const void *ptr)
{
    return sallocx(ptr, 0);
}

/* jemalloc gives its unused dirty pages back on a clock (dirty_decay_ms: 10 s, unless
 * MALLOC_CONF says otherwise) that only its own calls move, one look in 1,000 of them. With
 * the small requests served by the pools, a program whose large requests stop after a spike
 * would keep the spike's pages for good, where jemalloc alone gives them back within the decay
 * time. So the pools' traffic moves that clock too: a thread's malloc slow path, one in
 * PA_LARGE_DECAY_EVENTS, lets jemalloc purge what is due in every arena, at most every
 * PA_LARGE_DECAY_TICK_MS (its own clock advances in steps of a 200th of the decay time), and
 * only once armed (above) and within a decay time of a free on this path: the first mallctl
 * costs ~150 KiB of jemalloc's bookkeeping and maps ~190 KiB more of its code, which a
 * program with no large spike need not pay. */
static _Atomic uint64_t pa_large_ticked_ms, pa_large_decay_until_ms;

/* How long after a free jemalloc may still have pages to give back: its two decay times (-1,
 * never, counts as 0: nothing to tick for). Read once, by the first tick that needs it. */
static uint64_t decay_window_ms(void)
{
    static _Atomic uint64_t window;   /* + 1, so that 0 means unread */
    uint64_t w = atomic_load_explicit(&window, memory_order_relaxed);
    if (w == 0) {
        ssize_t dirty = 0, muzzy = 0;
        size_t len = sizeof dirty;
        mallctl("opt.dirty_decay_ms", &dirty, &len, NULL, 0);
        len = sizeof muzzy;
        mallctl("opt.muzzy_decay_ms", &muzzy, &len, NULL, 0);
        w = 1 + (uint64_t)(dirty > 0 ? dirty : 0) + (uint64_t)(muzzy > 0 ? muzzy : 0);
        atomic_store_explicit(&window, w, memory_order_relaxed);
    }
    return w - 1;
}

/* Any call initialises jemalloc, which registers its fork handlers (right after ours: when a
 * large request came first, its registration starts pa_init before it goes through,
 * atfork.c). nallocx is declared pure, so its result must be used for the call to stay; 0
 * says jemalloc could not start, and then every large request fails with ENOMEM, as it would
 * have anyway. */
static volatile size_t pa_large_min_usable;

void pa_large_init(void)
{
    pa_large_min_usable = nallocx(1, 0);
}

void pa_large_decay_tick(void)
{
    if (!atomic_load_explicit(&pa_large_armed, memory_order_relaxed) ||
        pa_tls_in_fork ||  /* jemalloc's ctl lock may be held by this very thread (fork.c) */
        tls_restarting)    /* as it is here (above) */
        return;
    if (!pa_os_once_per(&pa_large_ticked_ms, PA_LARGE_DECAY_TICK_MS))
        return;
    uint64_t now = pa_os_now_ms(),
             until = atomic_load_explicit(&pa_large_decay_until_ms, memory_order_relaxed);
    if (atomic_load_explicit(&pa_large_freed, memory_order_relaxed)) {
        atomic_store_explicit(&pa_large_freed, false, memory_order_relaxed);
        until = now + decay_window_ms() + PA_LARGE_DECAY_TICK_MS;
        atomic_store_explicit(&pa_large_decay_until_ms, until, memory_order_relaxed);
    }
    if (now >= until)
        return;
    _Static_assert(MALLCTL_ARENAS_ALL == 4096, "the name below means every arena");
    mallctl("arena.4096.decay", NULL, NULL, NULL, 0);
}

/* ---- jemalloc's own accounting, for the stats report. Its thread caches hold freed blocks
 * that it still counts as allocated: the calling thread's cache is flushed first (threads
 * that exited flushed theirs), so at exit the figures are exact. */

static size_t ctl_size(const char *name)
{
    size_t v = 0, len = sizeof v;
    return mallctl(name, &v, &len, NULL, 0) == 0 ? v : 0;
}

static uint64_t ctl_u64(const char *name)
{
    uint64_t v = 0;
    size_t len = sizeof v;
    return mallctl(name, &v, &len, NULL, 0) == 0 ? v : 0;
}

/* jemalloc's statistics are cached until the epoch advances. */
static void ctl_refresh(void)
{
    uint64_t epoch = 1;
    size_t len = sizeof epoch;
    mallctl("epoch", &epoch, &len, &epoch, len);
}

static unsigned bucket_of(size_t size)
{
    unsigned k = size <= 1 ? 0 : 64 - (unsigned)__builtin_clzl(size - 1);
    return k < PA_HIST_BUCKETS ? k : PA_HIST_BUCKETS - 1;
}

/* Current count of each size class: bins (jemalloc's small classes) and large extents. */
static void count_classes(pa_large_snapshot *s, const char *nclasses, const char *size_name,
                          const char *count_name)
{
    unsigned n = 0;
    size_t len = sizeof n, smib[4], cmib[6], slen = 4, clen = 6;
    if (mallctl(nclasses, &n, &len, NULL, 0) != 0 ||
        mallctlnametomib(size_name, smib, &slen) != 0 ||
        mallctlnametomib(count_name, cmib, &clen) != 0)
        return;
    cmib[2] = MALLCTL_ARENAS_ALL;
    for (unsigned j = 0; j < n; j++) {
        size_t size = 0, count = 0;
        smib[2] = j;
        cmib[4] = j;
        len = sizeof size;
        if (mallctlbymib(smib, slen, &size, &len, NULL, 0) != 0)
            continue;
        len = sizeof count;
        if (mallctlbymib(cmib, clen, &count, &len, NULL, 0) != 0 || count == 0)
            continue;
        s->in_use += count;
        s->hist[bucket_of(size)] += count;
    }
}

/* malloc_trim's part here: the calling thread's cached large blocks go back to their arenas,
 * and every arena's unused pages to the OS at once, where jemalloc's decay would take up to
 * dirty_decay_ms. Returns whether there were any such pages. */
bool pa_large_trim(void)
{
    if (pa_tls_in_fork)
        return false;
    mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
    ctl_refresh();
    size_t unused = ctl_size("stats.arenas.4096.pdirty") + ctl_size("stats.arenas.4096.pmuzzy");
    mallctl("arena.4096.purge", NULL, NULL, NULL, 0);
    return unused > 0;
}

/* Bytes the program holds on the large path and bytes jemalloc has mapped, fresh; 0 in the
 * forking thread during a fork (mallinfo from a fork handler), when jemalloc's ctl lock may be
 * held. */
void pa_large_totals(size_t *allocated, size_t *mapped)
{
    *allocated = *mapped = 0;
    if (pa_tls_in_fork)
        return;
    ctl_refresh();
    *allocated = ctl_size("stats.allocated");
    *mapped = ctl_size("stats.mapped");
}

void pa_large_snapshot_take(pa_large_snapshot *s)
{
    memset(s, 0, sizeof *s);
    if (pa_tls_in_fork)   /* as in pa_large_totals */
        return;
    mallctl("thread.tcache.flush", NULL, NULL, NULL, 0);
    pa_large_totals(&s->bytes, &s->mapped);
    count_classes(s, "arenas.nbins", "arenas.bin.0.size", "stats.arenas.0.bins.0.curregs");
    count_classes(s, "arenas.nlextents", "arenas.lextent.0.size",
                  "stats.arenas.0.lextents.0.curlextents");
    /* MALLCTL_ARENAS_ALL is 4096 (asserted above): the names below merge all arenas */
    s->allocs = ctl_u64("stats.arenas.4096.small.nrequests") +
                ctl_u64("stats.arenas.4096.large.nrequests");
    s->frees = s->allocs > s->in_use ? s->allocs - s->in_use : 0;
}
