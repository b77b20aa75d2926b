/* cxx.c — C++ operator new and delete, every form, exported so that C++ code allocates from
 * pyarena even where Debian's libjemalloc (which exports them too) would otherwise bind first.
 * Failure follows the standard: call the new_handler while there is one, then throw
 * std::bad_alloc (the throwing forms) or return NULL (nothrow). The two libstdc++ functions are
 * weak references: a C++ program has libstdc++ loaded; without it, failure aborts with a
 * message instead of throwing. Built with -fexceptions so exceptions unwind through it. */
#include <stddef.h>

#include "alloc.h"

typedef void (*pa_new_handler)(void);
extern pa_new_handler _ZSt15get_new_handlerv(void) __attribute__((weak));   /* std::get_new_handler */
extern void _ZSt17__throw_bad_allocv(void) __attribute__((weak, noreturn)); /* std::__throw_bad_alloc */

static void *bad_alloc(bool nothrow)
{
    if (nothrow)
        return NULL;
    if (_ZSt17__throw_bad_allocv)
        _ZSt17__throw_bad_allocv();
    pa_os_fatal("out of memory in operator new, and no C++ runtime to throw std::bad_alloc");
}

static void *pa_new(size_t align, size_t n, bool nothrow)
{
    /* an alignment that is not a power of two (undefined in C++) fails at once, new handler
     * or not, as in libstdc++'s own operator new */
    if (unlikely(align & (align - 1)))
        return bad_alloc(nothrow);
    for (;;) {
        void *p = align ? pa_api_aligned(align, n) : pa_malloc(n);
        if (likely(p != NULL))
            return p;
        pa_new_handler handler = _ZSt15get_new_handlerv ? _ZSt15get_new_handlerv() : NULL;
        if (!handler)
            return bad_alloc(nothrow);
        handler();
    }
}

#define PA_NEW(sym, ...)  PA_EXPORT void *sym(__VA_ARGS__)
#define PA_DEL(sym, ...)  PA_EXPORT void sym(__VA_ARGS__)

PA_NEW(_Znwm, size_t n);
PA_NEW(_Znam, size_t n);
PA_NEW(_ZnwmRKSt9nothrow_t, size_t n, const void *nt);
PA_NEW(_ZnamRKSt9nothrow_t, size_t n, const void *nt);
PA_NEW(_ZnwmSt11align_val_t, size_t n, size_t al);
PA_NEW(_ZnamSt11align_val_t, size_t n, size_t al);
PA_NEW(_ZnwmSt11align_val_tRKSt9nothrow_t, size_t n, size_t al, const void *nt);
PA_NEW(_ZnamSt11align_val_tRKSt9nothrow_t, size_t n, size_t al, const void *nt);

void *_Znwm(size_t n)                                   { return pa_new(0, n, false); }
void *_Znam(size_t n)                                   { return pa_new(0, n, false); }
void *_ZnwmRKSt9nothrow_t(size_t n, const void *nt)     { return pa_new(0, n, true); }
void *_ZnamRKSt9nothrow_t(size_t n, const void *nt)     { return pa_new(0, n, true); }
void *_ZnwmSt11align_val_t(size_t n, size_t al)         { return pa_new(al, n, false); }
void *_ZnamSt11align_val_t(size_t n, size_t al)         { return pa_new(al, n, false); }
void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t n, size_t al, const void *nt) { return pa_new(al, n, true); }
void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t n, size_t al, const void *nt) { return pa_new(al, n, true); }

/* Every delete is free: the size and alignment arguments are hints pyarena does not need. */
PA_DEL(_ZdlPv, void *p);
PA_DEL(_ZdaPv, void *p);
PA_DEL(_ZdlPvm, void *p, size_t n);
PA_DEL(_ZdaPvm, void *p, size_t n);
PA_DEL(_ZdlPvRKSt9nothrow_t, void *p, const void *nt);
PA_DEL(_ZdaPvRKSt9nothrow_t, void *p, const void *nt);
PA_DEL(_ZdlPvSt11align_val_t, void *p, size_t al);
PA_DEL(_ZdaPvSt11align_val_t, void *p, size_t al);
PA_DEL(_ZdlPvmSt11align_val_t, void *p, size_t n, size_t al);
PA_DEL(_ZdaPvmSt11align_val_t, void *p, size_t n, size_t al);
PA_DEL(_ZdlPvSt11align_val_tRKSt9nothrow_t, void *p, size_t al, const void *nt);
PA_DEL(_ZdaPvSt11align_val_tRKSt9nothrow_t, void *p, size_t al, const void *nt);

void _ZdlPv(void *p)                                     { pa_free(p); }
void _ZdaPv(void *p)                                     { pa_free(p); }
void _ZdlPvm(void *p, size_t n)                          { pa_free(p); }
void _ZdaPvm(void *p, size_t n)                          { pa_free(p); }
void _ZdlPvRKSt9nothrow_t(void *p, const void *nt)       { pa_free(p); }
void _ZdaPvRKSt9nothrow_t(void *p, const void *nt)       { pa_free(p); }
void _ZdlPvSt11align_val_t(void *p, size_t al)           { pa_free(p); }
void _ZdaPvSt11align_val_t(void *p, size_t al)           { pa_free(p); }
void _ZdlPvmSt11align_val_t(void *p, size_t n, size_t al) { pa_free(p); }
void _ZdaPvmSt11align_val_t(void *p, size_t n, size_t al) { pa_free(p); }
void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t al, const void *nt) { pa_free(p); }
void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t al, const void *nt) { pa_free(p); }
