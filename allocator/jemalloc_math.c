/* jemalloc_math.c — the only libm functions the embedded jemalloc calls (log, exp and round,
 * from its heap profiler's sampling, active only under MALLOC_CONF=prof:true). The Makefile renames
 * jemalloc's references to these, so libpyarena.so does not load libm.so into every process
 * (about 300 KiB of resident pages). Accurate to a few ulps, which sampling does not notice. */
#include <stdint.h>
#include <string.h>

#include "internal.h"

#define LN2_HI 6.93147180369123816490e-01   /* ln 2, high bits: k * LN2_HI is exact */
#define LN2_LO 1.90821492927058770002e-10
#define INV_LN2 1.44269504088896338700e+00

static double from_bits(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static uint64_t to_bits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

/* 2^k for k in [-1022, 1023]. */
static double pow2(int k)
{
    return from_bits((uint64_t)(k + 1023) << 52);
}

/* exp(x) = 2^k e^r with |r| <= ln2/2; the Taylor series of e^r to r^13 leaves < 1e-17. */
PA_HIDDEN double pa_jemalloc_exp(double x)
{
    if (x != x)
        return x;
    if (x > 709.782712893384)
        return from_bits(UINT64_C(0x7ff0000000000000));
    if (x < -745.1332191019412)
        return 0.0;
    double t = x * INV_LN2;
    int k = (int)(t < 0 ? t - 0.5 : t + 0.5);
    double r = (x - k * LN2_HI) - k * LN2_LO;
    double sum = 1.0;   /* Horner: 1 + r(1 + r/2(1 + r/3(...))) */
    for (int i = 13; i >= 1; i--)
        sum = 1.0 + sum * r / i;
    if (k < -1021)   /* a subnormal result: scale in two steps */
        return sum * pow2(k + 600) * pow2(-600);
    if (k > 1023)
        return sum * pow2(k - 1) * 2.0;
    return sum * pow2(k);
}

/* log(x) = e ln2 + log(m), m in [sqrt(1/2), sqrt(2)); log(m) = 2 atanh(s), s = (m-1)/(m+1),
 * |s| < 0.172, whose odd series to s^23 leaves < 1e-19. */
PA_HIDDEN double pa_jemalloc_log(double x)
{
    if (x != x || x == from_bits(UINT64_C(0x7ff0000000000000)))
        return x;
    if (x == 0.0)
        return -from_bits(UINT64_C(0x7ff0000000000000));
    if (x < 0.0)
        return from_bits(UINT64_C(0x7ff8000000000000));
    int e = 0;
    if (x < 0x1p-1022) {   /* subnormal: normalise first */
        x *= 0x1p54;
        e = -54;
    }
    uint64_t u = to_bits(x);
    e += (int)((u >> 52) & 0x7ff) - 1023;
    double m = from_bits((u & UINT64_C(0x000fffffffffffff)) | UINT64_C(0x3ff0000000000000));
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e++;
    }
    double s = (m - 1.0) / (m + 1.0), s2 = s * s, sum = 0.0;
    for (int i = 23; i >= 1; i -= 2)
        sum = sum * s2 + 1.0 / i;
    return e * LN2_HI + (e * LN2_LO + 2.0 * s * sum);
}

/* Half-way cases away from zero, as C's round. */
PA_HIDDEN double pa_jemalloc_round(double x)
{
    if (!(x > -0x1p52 && x < 0x1p52))   /* already whole, infinite or NaN */
        return x;
    double t = (double)(int64_t)x;     /* towards zero */
    if (x - t >= 0.5)
        t += 1.0;
    else if (t - x >= 0.5)
        t -= 1.0;
    if (t == 0.0 && (to_bits(x) >> 63))   /* -0.4 and -0.0 give -0.0 */
        return -0.0;
    return t;
}
