/* le.h - little-endian byte order for everything pstrain writes or sends:
 * checkpoints, safetensors and ONNX tensors, wire payloads (top-k pairs,
 * float16), the data-order record. One set of helpers, so that no file
 * carries its own shifts.
 *
 * le_storeN / le_loadN work at a pointer; le_writeN appends at a cursor
 * (*p advances by N / 8 bytes). Floats travel as their IEEE-754 bit
 * patterns, NaNs kept bit for bit. */
#ifndef PST_LE_H
#define PST_LE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define LE_HOST 1 /* the host is little-endian: floats are copied as they are */
#else
#define LE_HOST 0
#endif

static inline void le_store16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void le_store32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline void le_store64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint16_t le_load16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t le_load32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t le_load64(const uint8_t *p)
{
    return (uint64_t)le_load32(p) | (uint64_t)le_load32(p + 4) << 32;
}

static inline float le_loadf(const uint8_t *p)
{
    uint32_t u = le_load32(p);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline void le_storef(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    le_store32(p, u);
}

/* n floats to / from 4n bytes at p. */
static inline void le_store_floats(uint8_t *p, const float *src, size_t n)
{
#if LE_HOST
    if (n)
        memcpy(p, src, n * sizeof *src);
#else
    for (size_t i = 0; i < n; i++)
        le_storef(p + 4 * i, src[i]);
#endif
}

static inline void le_load_floats(float *dst, const uint8_t *p, size_t n)
{
#if LE_HOST
    if (n)
        memcpy(dst, p, n * sizeof *dst);
#else
    for (size_t i = 0; i < n; i++)
        dst[i] = le_loadf(p + 4 * i);
#endif
}

/* Cursor forms: write at *p, then advance it. */
static inline void le_write16(uint8_t **p, uint16_t v)
{
    le_store16(*p, v);
    *p += 2;
}

static inline void le_write32(uint8_t **p, uint32_t v)
{
    le_store32(*p, v);
    *p += 4;
}

static inline void le_write64(uint8_t **p, uint64_t v)
{
    le_store64(*p, v);
    *p += 8;
}

static inline void le_write_floats(uint8_t **p, const float *src, size_t n)
{
    le_store_floats(*p, src, n);
    *p += 4 * n;
}

#endif
