/* os.c — every system call the allocator makes: reserving address space, purging pages,
 * writing messages. Contract: none of these allocates, none uses stdio, and none leaves errno
 * changed except pa_os_reserve on failure (ENOMEM). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Tests make the next N reservations fail, to walk the out-of-memory paths. */
static _Atomic int pa_os_fail_maps;

void pa_os_fail_next_maps(int n)
{
    atomic_store(&pa_os_fail_maps, n);
}

/* Maps size bytes of zeroed, readable and writable memory aligned to align (a power of two).
 * MAP_NORESERVE: pages cost nothing until touched, so a region can be reserved whole. */
void *pa_os_reserve(size_t size, size_t align)
{
    if (atomic_load_explicit(&pa_os_fail_maps, memory_order_relaxed) > 0 &&
        atomic_fetch_sub(&pa_os_fail_maps, 1) > 0) {
        errno = ENOMEM;
        return NULL;
    }
    int saved = errno;
    size_t span = size + align;
    char *m = mmap(NULL, span, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    char *start = (char *)(((uintptr_t)m + align - 1) & ~(uintptr_t)(align - 1));
    if (start > m)
        munmap(m, (size_t)(start - m));
    if (start + size < m + span)
        munmap(start + size, (size_t)(m + span - (start + size)));
    errno = saved;
    return start;
}

/* Unmaps what pa_os_reserve mapped. */
void pa_os_release(void *addr, size_t size)
{
    int saved = errno;
    munmap(addr, size);
    errno = saved;
}

/* Gives the pages back to the OS; they read as zero when touched again. */
int pa_os_purge(void *addr, size_t size)
{
    int saved = errno;
    int rc = madvise(addr, size, MADV_DONTNEED);
    errno = saved;
    return rc;
}

/* Milliseconds of the coarse monotonic clock (the vDSO's: no system call), for the decays. */
uint64_t pa_os_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* Whether the caller is the first to find period_ms gone by since *last_ms, process-wide, in
 * which case *last_ms becomes now; false also when another thread stored a later clock than
 * this one read (never `now - last`, which that would make huge). */
bool pa_os_once_per(_Atomic uint64_t *last_ms, uint64_t period_ms)
{
    uint64_t now = pa_os_now_ms(), last = atomic_load_explicit(last_ms, memory_order_relaxed);
    return now >= last + period_ms &&
           atomic_compare_exchange_strong_explicit(last_ms, &last, now, memory_order_relaxed,
                                                   memory_order_relaxed);
}

/* Writes all of s; returns 0, or the errno of the failed write (errno itself is kept). */
int pa_os_write(int fd, const char *s, size_t n)
{
    int saved = errno, err = 0;
    while (n > 0) {
        ssize_t w = write(fd, s, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            err = w < 0 ? errno : EIO;
            break;
        }
        s += w;
        n -= (size_t)w;
    }
    errno = saved;
    return err;
}

/* Decimal digits of v into buf (20 bytes suffice); returns their number. */
size_t pa_os_fmt_dec(char *buf, uint64_t v)
{
    char t[20];
    size_t k = 0, len = 0;
    do
        t[k++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (k)
        buf[len++] = t[--k];
    return len;
}

/* The decimal digits at *s, whose end *s is moved to (past none if there are none: the caller
 * compares); saturates at UINT64_MAX rather than wrap. */
uint64_t pa_os_scan_dec(const char **s)
{
    uint64_t v = 0;
    const char *p = *s;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');
        v = v > (UINT64_MAX - d) / 10 ? UINT64_MAX : v * 10 + d;
    }
    *s = p;
    return v;
}

/* "0x" and hexadecimal digits of v into buf (18 bytes suffice); returns their number. */
size_t pa_os_fmt_hex(char *buf, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char t[16];
    size_t k = 0, len = 2;
    do
        t[k++] = digits[v & 15];
    while ((v >>= 4) != 0);
    buf[0] = '0';
    buf[1] = 'x';
    while (k)
        buf[len++] = t[--k];
    return len;
}

/* Writes the parts, joined, as one line to fd (cut at 511 bytes): one write, no stdio. */
void pa_os_say(int fd, const char *const *parts, size_t nparts)
{
    char msg[512];
    size_t len = 0;
    for (size_t i = 0; i < nparts; i++)
        for (const char *s = parts[i]; *s && len < sizeof msg - 1; s++)
            msg[len++] = *s;
    msg[len++] = '\n';
    pa_os_write(fd, msg, len);
}

_Noreturn void pa_os_fatal(const char *msg)
{
    const char *parts[] = { "pyarena: ", msg };
    pa_os_say(2, parts, 2);
    abort();
}
