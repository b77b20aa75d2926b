/* example.c — the README's example of libpyarena_handle: a list-cell type with a traverse, a
 * clear and a finalizer; a cycle the refcounts cannot free, a weak reference, a collection.
 * Build: cc example.c -lpyarena_handle (make build/handle/example). */
#include <stdio.h>

#include <pyarena/handle.h>

typedef struct cell {
    int   value;
    void *next;      /* a handle: this cell owns one reference to it */
} cell;

static void cell_traverse(void *self, pa_visit_fn visit, void *arg)
{
    visit(((cell *)self)->next, arg);
}

static void cell_clear(void *self)
{
    PA_CLEAR(((cell *)self)->next);   /* drop, and forget, the reference */
}

static void cell_finalize(void *self)
{
    printf("  finalize cell %d\n", ((cell *)self)->value);
}

static const pa_type cell_type = {
    .name = "cell", .size = sizeof(cell),
    .traverse = cell_traverse, .clear = cell_clear, .finalize = cell_finalize,
};

static void on_death(pa_weakref *ref, void *arg)
{
    printf("  weak reference to %s cleared\n", (const char *)arg);
    pa_weakref_free(ref);
}

int main(void)
{
    /* a -> b -> a: a cycle */
    cell *a = pa_new(&cell_type), *b = pa_new(&cell_type);
    a->value = 1;
    b->value = 2;
    a->next = b;                    /* a takes over our reference to b */
    pa_incref(a);
    b->next = a;                    /* b owns a new reference to a */
    pa_weakref_new(a, on_death, "cell 1");
    printf("refcounts: a=%zu b=%zu, tracked %zu\n", pa_refcount(a), pa_refcount(b), pa_gc_tracked());

    pa_decref(a);                   /* our last reference: the cycle keeps both alive */
    printf("after decref: tracked %zu\n", pa_gc_tracked());

    printf("collect:\n");
    size_t found = pa_gc_collect(2);
    pa_gc_stats st[3];
    pa_gc_get_stats(st);
    printf("found %zu unreachable, tracked %zu, full collections %zu, collected %zu\n",
           found, pa_gc_tracked(), st[2].collections, st[2].collected);

    /* no cycle: freed by refcount at once */
    cell *c = pa_new(&cell_type);
    c->value = 3;
    printf("decref cell 3:\n");
    pa_decref(c);
    printf("tracked %zu\n", pa_gc_tracked());
    return 0;
}
