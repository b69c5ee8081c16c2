#include "pyqsgd/rng.hpp"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define PYQSGD_HAVE_AVX2_PATH 1
#endif

namespace pyqsgd {
namespace {

#ifdef PYQSGD_HAVE_AVX2_PATH
// lo/hi 32-bit halves of the eight products a[i] * m (a lambda would not inherit the target).
__attribute__((target("avx2"), always_inline)) inline void mul8(__m256i a, __m256i m, __m256i& lo, __m256i& hi) {
    const __m256i e = _mm256_mul_epu32(a, m);                        // lo0 hi0 lo2 hi2 (per lane)
    const __m256i o = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);  // lo1 hi1 lo3 hi3
    const __m256i es = _mm256_shuffle_epi32(e, _MM_SHUFFLE(3, 1, 2, 0));
    const __m256i os = _mm256_shuffle_epi32(o, _MM_SHUFFLE(3, 1, 2, 0));
    lo = _mm256_unpacklo_epi32(es, os);
    hi = _mm256_unpackhi_epi32(es, os);
}

// Eight Philox blocks per vector. Compiled for AVX2 through a function attribute (no -m flag,
// the rest of the library stays baseline x86-64) and only called after a CPUID check. Every
// operation is integer, so the draws are bitwise identical to the scalar definition.
__attribute__((target("avx2"))) void fill_avx2(const Key& key, uint32_t block, uint64_t nblocks, uint32_t* out) {
    const __m256i m0 = _mm256_set1_epi32(int(0xD2511F53u)), m1 = _mm256_set1_epi32(int(0xCD9E8D57u));
    const __m256i step = _mm256_set_epi32(7, 6, 5, 4, 3, 2, 1, 0);
    uint64_t b = 0;
    for (; b + 8 <= nblocks; b += 8) {
        __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32(int(block + uint32_t(b))), step);
        __m256i c1 = _mm256_set1_epi32(int(key.stream)), c2 = _mm256_set1_epi32(int(key.worker));
        __m256i c3 = _mm256_set1_epi32(int(key.round));
        uint32_t k0 = static_cast<uint32_t>(key.seed), k1 = static_cast<uint32_t>(key.seed >> 32);
        for (int r = 0; r < 10; ++r) {
            __m256i lo0, hi0, lo1, hi1;
            mul8(c0, m0, lo0, hi0);
            mul8(c2, m1, lo1, hi1);
            const __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(int(k0)));
            const __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(int(k1)));
            c1 = lo1;
            c3 = lo0;
            c0 = n0;
            c2 = n2;
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        // In-lane 4x4 transposes: 128-bit lane 0 holds blocks 0-3, lane 1 blocks 4-7.
        const __m256i t0 = _mm256_unpacklo_epi32(c0, c1), t1 = _mm256_unpacklo_epi32(c2, c3);
        const __m256i t2 = _mm256_unpackhi_epi32(c0, c1), t3 = _mm256_unpackhi_epi32(c2, c3);
        const __m256i r0 = _mm256_unpacklo_epi64(t0, t1), r1 = _mm256_unpackhi_epi64(t0, t1);
        const __m256i r2 = _mm256_unpacklo_epi64(t2, t3), r3 = _mm256_unpackhi_epi64(t2, t3);
        uint32_t* o = out + 4 * b;
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 0), _mm256_permute2x128_si256(r0, r1, 0x20));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 8), _mm256_permute2x128_si256(r2, r3, 0x20));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 16), _mm256_permute2x128_si256(r0, r1, 0x31));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 24), _mm256_permute2x128_si256(r2, r3, 0x31));
    }
    for (; b < nblocks; b += 4) philox16(key, block + uint32_t(b), out + 4 * b);
}

bool cpu_has_avx2() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}
#endif

}  // namespace

void philox_fill(const Key& key, uint32_t block, uint64_t nblocks, uint32_t* out) {
#ifdef PYQSGD_HAVE_AVX2_PATH
    static const bool avx2 = cpu_has_avx2();
    if (avx2) {
        fill_avx2(key, block, nblocks, out);
        return;
    }
#endif
    for (uint64_t b = 0; b < nblocks; b += 4) philox16(key, block + uint32_t(b), out + 4 * b);
}

}  // namespace pyqsgd
