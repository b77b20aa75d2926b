/* handle_test.h — object types shared by the handle tests: a two-slot node (tracked, with
 * clear), variants with finalizers, without clear, and an untracked leaf; plus an event log
 * that finalizers, clears and weak reference callbacks write to. Each Criterion test runs in
 * its own process, so the globals start at zero in every test. */
#ifndef HANDLE_TEST_H
#define HANDLE_TEST_H

#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "pyarena.h"
#include "pyarena/handle.h"

#define NODE_MAGIC 0x6e6f6465u

typedef struct node {
    void    *a, *b;      /* handles (owned references) */
    uint32_t magic;      /* NODE_MAGIC while alive: finalizers check their peers with it */
    int      id;
    void   **resurrect;  /* finalizer stores a new reference to self here when set */
} node;

extern const pa_type node_type;        /* traverse + clear */
extern const pa_type fnode_type;       /* traverse + clear + finalize (logs, checks peers) */
extern const pa_type noclear_type;     /* traverse, no clear: cycles are uncollectable */
extern const pa_type leaf_type;        /* untracked, 16 bytes, finalize counts */

/* Counters bumped by the types above. */
extern size_t t_finalized, t_cleared, t_leaf_finalized, t_peer_checks_failed;

/* Event log: short strings in order (finalizers log "F<id>", weakref callbacks "W<id>"). */
void t_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern char t_events[4096];

node *t_node(const pa_type *type, int id);                 /* new node with id, magic set */
void  t_link(node *from, void **slot, node *to);           /* *slot = to, taking a reference */
/* count objects built as a ring: obj[i].a = obj[(i+1) % n]; returns the first (one reference). */
node *t_ring(const pa_type *type, size_t n);

#endif
