// Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11).
//
// Every draw is addressed, never advanced: the value of draw j of a stream is a pure function
// of (seed, round, worker, stream, j). That is what makes results identical at any thread count
// and scheduling: a thread handling coordinates [a, b) computes exactly the draws it needs.
#pragma once
#include <cstdint>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace pyqsgd {

// Address of a random stream. Combinators derive child streams with `child(i)`.
struct Key {
    uint64_t seed = 0;
    uint32_t round = 0;
    uint32_t worker = 0;
    uint32_t stream = 0;

    // Binary-tree numbering keeps nested combinators' streams distinct: child(0) and child(1)
    // of stream s are 2s+1 and 2s+2, which no other node of the tree uses.
    Key child(uint32_t i) const {
        Key k = *this;
        k.stream = 2u * stream + 1u + i;
        return k;
    }
    Key with(uint32_t round_, uint32_t worker_) const {
        Key k = *this;
        k.round = round_;
        k.worker = worker_;
        return k;
    }
};

// SplitMix64 finaliser: derives independent seeds for different purposes (batch sampling,
// participation, ...) from one user seed.
inline uint64_t mix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

struct Block4 {
    uint32_t v[4];
};

// One Philox4x32-10 evaluation. Counter = (block, stream, worker, round); key = seed.
inline Block4 philox(const Key& key, uint32_t block) {
    uint32_t c0 = block, c1 = key.stream, c2 = key.worker, c3 = key.round;
    uint32_t k0 = static_cast<uint32_t>(key.seed), k1 = static_cast<uint32_t>(key.seed >> 32);
    for (int r = 0; r < 10; ++r) {
        const uint64_t p0 = uint64_t(0xD2511F53u) * c0;
        const uint64_t p1 = uint64_t(0xCD9E8D57u) * c2;
        const uint32_t n0 = uint32_t(p1 >> 32) ^ c1 ^ k0;
        const uint32_t n2 = uint32_t(p0 >> 32) ^ c3 ^ k1;
        c1 = uint32_t(p1);
        c3 = uint32_t(p0);
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    return Block4{{c0, c1, c2, c3}};
}

// Draws 4*block .. 4*block + 15 (blocks block .. block+3, block index wrapping like the scalar
// path) into out[0..16). SSE2: four Philox blocks per vector; `_mm_mul_epu32` gives two
// 32x32->64 products, so each round costs four multiplies for four blocks. Integer-only, so
// it is bitwise identical to `philox` (the scalar fallback is the definition).
inline void philox16(const Key& key, uint32_t block, uint32_t* out) {
#ifdef __SSE2__
    const __m128i m0 = _mm_set1_epi32(int(0xD2511F53u)), m1 = _mm_set1_epi32(int(0xCD9E8D57u));
    __m128i c0 = _mm_add_epi32(_mm_set1_epi32(int(block)), _mm_set_epi32(3, 2, 1, 0));
    __m128i c1 = _mm_set1_epi32(int(key.stream)), c2 = _mm_set1_epi32(int(key.worker));
    __m128i c3 = _mm_set1_epi32(int(key.round));
    uint32_t k0 = static_cast<uint32_t>(key.seed), k1 = static_cast<uint32_t>(key.seed >> 32);
    // lo/hi 32-bit halves of the four products a[i] * m.
    auto mul = [](__m128i a, __m128i m, __m128i& lo, __m128i& hi) {
        const __m128i e = _mm_mul_epu32(a, m);                     // lo0 hi0 lo2 hi2
        const __m128i o = _mm_mul_epu32(_mm_srli_epi64(a, 32), m);  // lo1 hi1 lo3 hi3
        const __m128i es = _mm_shuffle_epi32(e, _MM_SHUFFLE(3, 1, 2, 0));  // lo0 lo2 hi0 hi2
        const __m128i os = _mm_shuffle_epi32(o, _MM_SHUFFLE(3, 1, 2, 0));  // lo1 lo3 hi1 hi3
        lo = _mm_unpacklo_epi32(es, os);  // lo0 lo1 lo2 lo3
        hi = _mm_unpackhi_epi32(es, os);  // hi0 hi1 hi2 hi3
    };
    for (int r = 0; r < 10; ++r) {
        __m128i lo0, hi0, lo1, hi1;
        mul(c0, m0, lo0, hi0);
        mul(c2, m1, lo1, hi1);
        const __m128i n0 = _mm_xor_si128(_mm_xor_si128(hi1, c1), _mm_set1_epi32(int(k0)));
        const __m128i n2 = _mm_xor_si128(_mm_xor_si128(hi0, c3), _mm_set1_epi32(int(k1)));
        c1 = lo1;
        c3 = lo0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    // Transpose: row i = block (block + i) = draws 4i .. 4i+3.
    const __m128i t0 = _mm_unpacklo_epi32(c0, c1), t1 = _mm_unpacklo_epi32(c2, c3);
    const __m128i t2 = _mm_unpackhi_epi32(c0, c1), t3 = _mm_unpackhi_epi32(c2, c3);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 0), _mm_unpacklo_epi64(t0, t1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 4), _mm_unpackhi_epi64(t0, t1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 8), _mm_unpacklo_epi64(t2, t3));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 12), _mm_unpackhi_epi64(t2, t3));
#else
    for (uint32_t i = 0; i < 4; ++i) {
        const Block4 b = philox(key, block + i);
        for (int l = 0; l < 4; ++l) out[4 * i + l] = b.v[l];
    }
#endif
}

// Draws of blocks block .. block + nblocks - 1 (nblocks a multiple of 4) into out[0..4 nblocks):
// the bulk path of the kernels. Uses AVX2 when the CPU has it (checked once at run time),
// else philox16; the draws are the same either way.
void philox_fill(const Key& key, uint32_t block, uint64_t nblocks, uint32_t* out);

// 32-bit draw j of the stream (block j/4, lane j%4).
inline uint32_t draw_u32(const Key& key, uint64_t j) {
    return philox(key, static_cast<uint32_t>(j >> 2)).v[j & 3u];
}

// Uniform in [0, 1) with 24 random bits, exactly representable in float32.
inline float to_unit_float(uint32_t u) { return float(u >> 8) * (1.0f / 16777216.0f); }

// 64-bit draw j (block j/2, lanes 2(j%2), 2(j%2)+1).
inline uint64_t draw_u64(const Key& key, uint64_t j) {
    const Block4 b = philox(key, static_cast<uint32_t>(j >> 1));
    const unsigned o = unsigned(j & 1u) * 2u;
    return (uint64_t(b.v[o]) << 32) | b.v[o + 1];
}

// Integer in [0, n) from a 64-bit draw (multiply-shift; bias <= n / 2^64, negligible).
inline uint64_t bounded(uint64_t u, uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(u) * n) >> 64);
}

// Fills out[0..n) with the uniforms of draws [first, first + n): one Philox call per 4 draws.
inline void fill_uniform(const Key& key, uint64_t first, uint64_t n, float* out) {
    uint64_t j = first;
    const uint64_t end = first + n;
    while (j < end) {
        const Block4 b = philox(key, static_cast<uint32_t>(j >> 2));
        for (unsigned lane = unsigned(j & 3u); lane < 4 && j < end; ++lane, ++j)
            out[j - first] = to_unit_float(b.v[lane]);
    }
}

}  // namespace pyqsgd
