/* Internal: scalar float16 / bfloat16 <-> float conversions (round to
 * nearest even, NaN kept quiet), for tails and the portable path. */
#ifndef CNORM_HALF_H
#define CNORM_HALF_H

#include <stdint.h>
#include <string.h>

static inline float cnorm_bits_to_f32(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static inline uint32_t cnorm_f32_to_bits(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

static inline float cnorm_f16_to_f32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return cnorm_bits_to_f32(sign | 0x7f800000u | (man << 13)); /* inf, NaN */
    if (exp != 0) return cnorm_bits_to_f32(sign | ((exp + 112u) << 23) | (man << 13));
    if (man == 0) return cnorm_bits_to_f32(sign);
    uint32_t e = 113; /* subnormal: shift the mantissa up to the implicit bit */
    do {
        man <<= 1;
        --e;
    } while (!(man & 0x400u));
    return cnorm_bits_to_f32(sign | (e << 23) | ((man & 0x3ffu) << 13));
}

static inline uint16_t cnorm_f32_to_f16(float f) {
    const uint32_t x = cnorm_f32_to_bits(f), ax = x & 0x7fffffffu;
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    if (ax > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((ax >> 13) & 0x3ffu)); /* NaN */
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 (and inf) */
    if (ax >= 0x38800000u) {                                   /* normal half */
        const uint32_t r = ax - 0x38000000u + 0xfffu + ((ax >> 13) & 1u);
        return (uint16_t)(sign | (r >> 13));
    }
    if (ax < 0x33000000u) return sign; /* below half the smallest subnormal */
    const uint32_t e = ax >> 23, m = (ax & 0x7fffffu) | 0x800000u, shift = 126u - e;
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1u), halfway = 1u << (shift - 1u);
    if (rem > halfway || (rem == halfway && (r & 1u))) ++r;
    return (uint16_t)(sign | r);
}

static inline float cnorm_bf16_to_f32(uint16_t h) { return cnorm_bits_to_f32((uint32_t)h << 16); }

static inline uint16_t cnorm_f32_to_bf16(float f) {
    const uint32_t x = cnorm_f32_to_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u); /* NaN */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

#endif
