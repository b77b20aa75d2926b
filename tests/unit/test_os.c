/* test_os.c — the decimal scanner that the settings, the stats' /proc reads and the fork
 * guard's glibc version share (os.c). */
#include "helpers.h"

static uint64_t scan(const char *text, size_t *used)
{
    const char *s = text;
    uint64_t v = pa_os_scan_dec(&s);
    *used = (size_t)(s - text);
    return v;
}

Test(os, scan_dec_reads_the_leading_digits_and_saturates)
{
    size_t used;
    cr_assert_eq(scan("2.36", &used), 2);
    cr_assert_eq(used, 1);
    cr_assert_eq(scan("65536", &used), 65536);
    cr_assert_eq(used, 5);
    cr_assert_eq(scan("007 kB", &used), 7);
    cr_assert_eq(used, 3);
    cr_assert_eq(scan("x1", &used), 0);
    cr_assert_eq(used, 0, "no digit: nothing read");
    cr_assert_eq(scan("", &used), 0);
    cr_assert_eq(used, 0);
    cr_assert_eq(scan("18446744073709551615", &used), UINT64_MAX);
    cr_assert_eq(scan("18446744073709551616", &used), UINT64_MAX, "one past: saturates");
    cr_assert_eq(scan("99999999999999999999999", &used), UINT64_MAX);
    cr_assert_eq(used, 23, "every digit consumed");
}
