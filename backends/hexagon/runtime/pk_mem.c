/* pk_mem.c: memcpy and memset, with HVX where the build enables it (-mhvx
   -mhvx-length=128b): 128-byte vector loads and stores, unaligned ones (vmemu) at the
   source, aligned ones at the destination once it is aligned. v67 HVX has no float
   arithmetic, but moving floats is moving bytes, so bulk copies (the Device's inputs and
   outputs, the kernels' packing and zeroing, parameter copies) use it.

   Built with -DPK_NO_HVX (or without -mhvx) they are plain word loops;
   benchmarks/hexagon_hvx.py measures both under qemu. The compiler also calls
   __hexagon_memcpy_likely_aligned_min32bytes_mult8bytes for aggregate copies. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PK_NO_BUILTIN __attribute__((no_builtin))

#if defined(__HVX__) && __HVX_LENGTH__ == 128 && !defined(PK_NO_HVX)
#define PK_HVX 1
typedef int32_t pk_hvx __attribute__((vector_size(128), aligned(128)));
typedef int32_t pk_hvx_u __attribute__((vector_size(128), aligned(1)));
#endif

/* no_builtin: clang would turn these loops back into calls of themselves */
PK_NO_BUILTIN void *memcpy(void *restrict dst, const void *restrict src, size_t n) {
    unsigned char *d = dst;
    const unsigned char *s = src;
#ifdef PK_HVX
    if (n >= 256) {
        size_t head = (size_t)(-(uintptr_t)d & 127);
        for (size_t i = 0; i < head; i++) d[i] = s[i];
        d += head, s += head, n -= head;
        for (; n >= 512; n -= 512, d += 512, s += 512) {
            pk_hvx a = *(const pk_hvx_u *)s, b = *(const pk_hvx_u *)(s + 128);
            pk_hvx c = *(const pk_hvx_u *)(s + 256), e = *(const pk_hvx_u *)(s + 384);
            *(pk_hvx *)d = a, *(pk_hvx *)(d + 128) = b, *(pk_hvx *)(d + 256) = c, *(pk_hvx *)(d + 384) = e;
        }
        for (; n >= 128; n -= 128, d += 128, s += 128) *(pk_hvx *)d = *(const pk_hvx_u *)s;
    }
#endif
    if ((((uintptr_t)d | (uintptr_t)s) & 3) == 0) {
        for (; n >= 16; n -= 16, d += 16, s += 16) {
            uint32_t a = ((const uint32_t *)s)[0], b = ((const uint32_t *)s)[1];
            uint32_t c = ((const uint32_t *)s)[2], e = ((const uint32_t *)s)[3];
            ((uint32_t *)d)[0] = a, ((uint32_t *)d)[1] = b, ((uint32_t *)d)[2] = c, ((uint32_t *)d)[3] = e;
        }
        for (; n >= 4; n -= 4, d += 4, s += 4) *(uint32_t *)d = *(const uint32_t *)s;
    }
    for (size_t i = 0; i < n; i++) d[i] = s[i];
    return dst;
}

void *__hexagon_memcpy_likely_aligned_min32bytes_mult8bytes(void *dst, const void *src, size_t n) {
    return memcpy(dst, src, n);
}

PK_NO_BUILTIN void *memset(void *dst, int c, size_t n) {
    unsigned char *d = dst;
    uint32_t w = (unsigned char)c * 0x01010101u;
#ifdef PK_HVX
    if (n >= 256) {
        size_t head = (size_t)(-(uintptr_t)d & 127);
        for (size_t i = 0; i < head; i++) d[i] = (unsigned char)c;
        d += head, n -= head;
        pk_hvx v = (pk_hvx)__builtin_HEXAGON_V6_lvsplatw_128B((int)w);
        for (; n >= 128; n -= 128, d += 128) *(pk_hvx *)d = v;
    }
#endif
    if (((uintptr_t)d & 3) == 0)
        for (; n >= 4; n -= 4, d += 4) *(uint32_t *)d = w;
    for (size_t i = 0; i < n; i++) d[i] = (unsigned char)c;
    return dst;
}
