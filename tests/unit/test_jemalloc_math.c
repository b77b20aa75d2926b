/* test_jemalloc_math.c — the log, exp and round that the embedded jemalloc calls instead of
 * libm's, against libm's own over their whole ranges, edges included. */
#include <math.h>
#include <stdint.h>

#include "helpers.h"

/* Distance in units in the last place between two finite doubles of the same sign. */
static uint64_t ulps(double a, double b)
{
    int64_t ia, ib;
    memcpy(&ia, &a, sizeof ia);
    memcpy(&ib, &b, sizeof ib);
    return ia > ib ? (uint64_t)(ia - ib) : (uint64_t)(ib - ia);
}

Test(jemalloc_math, exp_matches_libm)
{
    uint64_t worst = 0;
    for (double x = -745.0; x <= 709.7; x += 0.0137) {
        double want = exp(x), got = pa_jemalloc_exp(x);
        if (want == 0.0 || fpclassify(want) == FP_SUBNORMAL) {
            cr_assert_leq(fabs(got - want), 0x1p-1070, "exp(%a): %a, libm %a", x, got, want);
            continue;
        }
        uint64_t u = ulps(got, want);
        cr_assert_leq(u, 4, "exp(%a): %a, libm %a (%lu ulps)", x, got, want, (unsigned long)u);
        worst = u > worst ? u : worst;
    }
    cr_assert_eq(pa_jemalloc_exp(0.0), 1.0);
    cr_assert(isinf(pa_jemalloc_exp(710.0)));
    cr_assert_eq(pa_jemalloc_exp(-746.0), 0.0);
    cr_assert(isnan(pa_jemalloc_exp(NAN)));
    cr_log_info("exp: worst %lu ulps", (unsigned long)worst);
}

Test(jemalloc_math, log_matches_libm)
{
    for (int e = -1074; e < 1024; e++)
        for (double f = 1.0; f < 2.0; f += 0.0917) {
            double x = ldexp(f, e), want = log(x), got = pa_jemalloc_log(x);
            if (x != 0.0 && !isinf(x) && fabs(want) > 1e-300)
                cr_assert_leq(ulps(got, want), 4, "log(%a): %a, libm %a", x, got, want);
        }
    for (double x = 0.5; x < 2.0; x += 0.000731)   /* around 1, where cancellation bites */
        cr_assert_leq(fabs(pa_jemalloc_log(x) - log(x)), 4 * 0x1p-52 * fabs(log(x)) + 0x1p-60,
                      "log(%a)", x);
    cr_assert_eq(pa_jemalloc_log(1.0), 0.0);
    cr_assert(isinf(pa_jemalloc_log(0.0)) && pa_jemalloc_log(0.0) < 0);
    cr_assert(isnan(pa_jemalloc_log(-1.0)));
    cr_assert(isinf(pa_jemalloc_log(INFINITY)));
}

Test(jemalloc_math, round_matches_libm)
{
    const double xs[] = { 0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999999999999994,
                          -0.49999999999999994, 4503599627370495.5, 0x1p52, 0x1p53 + 2.0,
                          -0x1p60, 1e300, INFINITY, -INFINITY, 123.456, -123.456 };
    for (size_t i = 0; i < sizeof xs / sizeof *xs; i++) {
        double want = round(xs[i]), got = pa_jemalloc_round(xs[i]);
        cr_assert(got == want && signbit(got) == signbit(want), "round(%a): %a, libm %a",
                  xs[i], got, want);
    }
    cr_assert(isnan(pa_jemalloc_round(NAN)));
}
