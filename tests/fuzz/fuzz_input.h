/* fuzz_input.h — how the fuzz targets read their input: one byte at a time, zeros once the
 * input runs out (so every input, however short, decodes to a whole operation). */
#ifndef PA_FUZZ_INPUT_H
#define PA_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

typedef struct input {
    const uint8_t *p;
    size_t n;
} input;

static inline unsigned byte(input *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

#endif
