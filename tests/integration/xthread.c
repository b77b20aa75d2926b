/* xthread.c — cross-thread frees under the preload: worker threads allocate small blocks of
 * many sizes, pattern-fill them and post them to other threads' mailboxes, which verify (some
 * after a realloc) and free them; threads exit and fresh ones take their slot while blocks
 * allocated by the dead threads are still queued; a TLS destructor allocates and frees while its
 * thread exits. Prints a summary the runner checks. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS        4      /* threads alive at once */
#define GENERATIONS  8      /* threads started per slot over the run */
#define ROUNDS       1000   /* batches a thread allocates before it exits */
#define BATCH        64     /* blocks per batch */
#define MAX_THREADS  (SLOTS * GENERATIONS)

typedef struct blk {
    struct blk *next;       /* mailbox link */
    uint32_t    size;       /* bytes requested */
    uint32_t    owner;      /* id of the allocating thread */
    uint32_t    seq;
    uint32_t    magic;
} blk;                      /* 24 bytes; payload follows up to size */

#define MAGIC 0x5eed1e55u

typedef struct mailbox {
    pthread_mutex_t lock;
    blk            *head;
    uint64_t        count;
} mailbox;

static mailbox     boxes[SLOTS];
static atomic_int  owner_dead[MAX_THREADS];
static atomic_ullong n_alloc, n_free, n_errors, n_after_exit, n_realloc, n_alloc_fail, n_dtor;
static pthread_key_t exit_key;

/* Runs during thread exit (possibly after the allocator's own exit hook): allocate, check and
 * free small and large blocks, then free the block the thread left in its key. */
static void exit_dtor(void *v)
{
    for (size_t n = 1; n <= 1024; n += 37) {
        unsigned char *p = malloc(n);
        if (p == NULL) {
            atomic_fetch_add(&n_alloc_fail, 1);
            continue;
        }
        memset(p, (int)n, n);
        p = realloc(p, n + 100);
        if (p == NULL || p[n - 1] != (unsigned char)n)
            atomic_fetch_add(&n_errors, 1);
        free(p);
    }
    unsigned char *b = v;
    if (b[0] != 0x42 || b[99] != 0x42)
        atomic_fetch_add(&n_errors, 1);
    free(b);
    atomic_fetch_add(&n_dtor, 1);
}

static uint32_t rng(uint64_t *s)
{
    *s ^= *s << 13; *s ^= *s >> 7; *s ^= *s << 17;
    return (uint32_t)(*s >> 11);
}

static unsigned char pat(const blk *b, size_t i)
{
    return (unsigned char)(b->seq * 31u + b->owner * 7u + i);
}

static int check(const blk *b, size_t upto)
{
    if (b->magic != MAGIC || upto > b->size)
        return 1;
    const unsigned char *c = (const unsigned char *)b;
    for (size_t i = sizeof(blk); i < upto; i++)
        if (c[i] != pat(b, i))
            return 1;
    return 0;
}

/* Verify and free every block in mailbox `slot`; returns how many. */
static uint64_t drain(int slot, uint64_t *rs)
{
    mailbox *m = &boxes[slot];
    pthread_mutex_lock(&m->lock);
    blk *b = m->head;
    m->head = NULL;
    m->count = 0;
    pthread_mutex_unlock(&m->lock);
    uint64_t n = 0;
    while (b) {
        blk *next = b->next;
        if (check(b, b->size))
            atomic_fetch_add(&n_errors, 1);
        if (atomic_load(&owner_dead[b->owner]))
            atomic_fetch_add(&n_after_exit, 1);
        if ((rng(rs) & 7) == 0) {
            /* realloc a block another thread allocated: the prefix must survive */
            size_t keep = b->size;
            size_t nsz = sizeof(blk) + rng(rs) % 1000;
            if (nsz < keep)
                keep = nsz;
            blk *r = realloc(b, nsz);
            if (r == NULL) {
                atomic_fetch_add(&n_alloc_fail, 1);
                free(b);
            } else {
                if (check(r, keep))
                    atomic_fetch_add(&n_errors, 1);
                atomic_fetch_add(&n_realloc, 1);
                free(r);
            }
        } else {
            memset(b, 0xdd, b->size);     /* scribble before freeing: no one may still read it */
            free(b);
        }
        n++;
        b = next;
    }
    atomic_fetch_add(&n_free, n);
    return n;
}

typedef struct targ { int slot; uint32_t id; } targ;

static void *worker(void *arg)
{
    targ *t = arg;
    uint64_t rs = 0x9e3779b97f4a7c15ull ^ ((uint64_t)t->id * 0x100000001b3ull);
    uint32_t seq = 0;
    unsigned char *keep = malloc(100);
    if (keep) {
        memset(keep, 0x42, 100);
        pthread_setspecific(exit_key, keep);
    }
    for (int r = 0; r < ROUNDS; r++) {
        int dest = (t->slot + 1 + (int)(rng(&rs) % (SLOTS - 1))) % SLOTS;
        blk *head = NULL, *tail = NULL;
        for (int i = 0; i < BATCH; i++) {
            size_t sz = sizeof(blk) + rng(&rs) % (512 - sizeof(blk) + 1);   /* 24..512 */
            blk *b = malloc(sz);
            if (b == NULL) {
                atomic_fetch_add(&n_alloc_fail, 1);
                continue;
            }
            b->size = (uint32_t)sz;
            b->owner = t->id;
            b->seq = seq++;
            b->magic = MAGIC;
            unsigned char *c = (unsigned char *)b;
            for (size_t k = sizeof(blk); k < sz; k++)
                c[k] = pat(b, k);
            b->next = NULL;
            if (tail) tail->next = b; else head = b;
            tail = b;
            atomic_fetch_add(&n_alloc, 1);
        }
        if (head) {
            mailbox *m = &boxes[dest];
            pthread_mutex_lock(&m->lock);
            tail->next = m->head;
            m->head = head;
            m->count += BATCH;
            pthread_mutex_unlock(&m->lock);
        }
        /* free what others sent us; leave some queued so the next owner of the slot inherits */
        if ((r & 3) == 0)
            drain(t->slot, &rs);
    }
    atomic_store(&owner_dead[t->id], 1);   /* set just before the thread's exit */
    return NULL;
}

int main(void)
{
    pthread_t th[SLOTS];
    targ args[MAX_THREADS];
    uint32_t next_id = 0;
    for (int s = 0; s < SLOTS; s++)
        pthread_mutex_init(&boxes[s].lock, NULL);
    pthread_key_create(&exit_key, exit_dtor);
    for (int s = 0; s < SLOTS; s++) {
        args[next_id] = (targ){ s, next_id };
        if (pthread_create(&th[s], NULL, worker, &args[next_id]) != 0) {
            printf("pthread_create failed\n");
            return 2;
        }
        next_id++;
    }
    int started = SLOTS;
    /* replace each finished thread by a new one in the same slot */
    for (int g = 1; g < GENERATIONS; g++)
        for (int s = 0; s < SLOTS; s++) {
            pthread_join(th[s], NULL);
            args[next_id] = (targ){ s, next_id };
            if (pthread_create(&th[s], NULL, worker, &args[next_id]) != 0) {
                printf("pthread_create failed\n");
                return 2;
            }
            next_id++;
            started++;
        }
    for (int s = 0; s < SLOTS; s++)
        pthread_join(th[s], NULL);
    /* leftovers: every slot's last blocks, freed by the main thread after all owners exited */
    uint64_t rs = 12345;
    for (int s = 0; s < SLOTS; s++)
        drain(s, &rs);
    printf("threads %d\n", started);
    printf("allocated %llu freed %llu\n", (unsigned long long)atomic_load(&n_alloc),
           (unsigned long long)atomic_load(&n_free));
    printf("pattern_errors %llu\n", (unsigned long long)atomic_load(&n_errors));
    printf("alloc_failures %llu\n", (unsigned long long)atomic_load(&n_alloc_fail));
    printf("reallocs %llu\n", (unsigned long long)atomic_load(&n_realloc));
    printf("freed_after_owner_exit %llu\n", (unsigned long long)atomic_load(&n_after_exit));
    printf("exit_destructors %llu\n", (unsigned long long)atomic_load(&n_dtor));
    int ok = atomic_load(&n_alloc) == atomic_load(&n_free) && atomic_load(&n_errors) == 0 &&
             atomic_load(&n_alloc_fail) == 0 && atomic_load(&n_after_exit) > 0 &&
             atomic_load(&n_dtor) == (unsigned long long)started;
    printf("xthread %s\n", ok ? "OK" : "BAD");
    return ok ? 0 : 1;
}
