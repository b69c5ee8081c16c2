#include <cstring>
#include <cstdint>
#include <vector>

#include "pyqsgd/compressors/basic.hpp"
#include "pyqsgd/parallel.hpp"
#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace pyqsgd {

// ---- Identity -------------------------------------------------------------------------------

void Identity::encode(const float* x, uint64_t d, const Key&, Message& msg, Workspace&) const {
    Section& s = msg.add_for_overwrite(32 * d);
    // Little-endian float32 stream; the finiteness check rides along with the copy.
    if (copy_checked(reinterpret_cast<float*>(s.words.data()), x, d))
        fail("x contains NaN or Inf; compressors need finite input");
}

void Identity::decode(const Message&, SectionCursor& cur, uint64_t d, const Key&, float* out, Workspace&) const {
    const Section& s = cur.next("Identity");
    expect_bits(s, 32 * d, "Identity");
    if (copy_checked(out, reinterpret_cast<const float*>(s.words.data()), d))
        fail("Identity: message decodes to NaN or Inf (malformed message)");
}

Properties Identity::properties(uint64_t) const {
    Properties p;
    p.unbiased = true;
    p.omega = 0.0;
    p.delta = 1.0;
    return p;
}

void Identity::select(const float* x, uint64_t d, const Key&, Message&, Workspace&, Selection& sel) const {
    sel.dense = true;
    sel.indices.clear();
    sel.values.assign(x, x + d);
}

void Identity::read_selection(const Message&, SectionCursor&, uint64_t, const Key&, Workspace&, Selection& sel) const {
    sel.dense = true;
    sel.indices.clear();
}

// ---- sign packing ---------------------------------------------------------------------------

namespace {
// One word (64 coordinates from `base`) of sign bits; with kL1, adds |x_j| to lane[j % 8] in
// index order, exactly the additions of block_sum_abs() (lane_sum8), so the fused norm is
// bitwise the same as norm1().
template <bool kL1>
uint64_t pack_word(const float* x, uint64_t base, uint64_t n, uint32_t& nonfinite, double* lane) {
    uint64_t word = 0;
    uint64_t j = 0;
#ifdef __SSE2__
    const __m128 zero = _mm_setzero_ps();
    const __m128i expmask = _mm_set1_epi32(0x7F800000);
    const __m128d sign = _mm_set1_pd(-0.0);
    __m128i badv = _mm_setzero_si128();
    __m128d a0 = _mm_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
    if (kL1) {
        a0 = _mm_loadu_pd(lane);
        a1 = _mm_loadu_pd(lane + 2);
        a2 = _mm_loadu_pd(lane + 4);
        a3 = _mm_loadu_pd(lane + 6);
    }
    for (; j + 8 <= n; j += 8) {
        const __m128 v0 = _mm_loadu_ps(x + base + j), v1 = _mm_loadu_ps(x + base + j + 4);
        word |= uint64_t(_mm_movemask_ps(_mm_cmplt_ps(v0, zero)) | (_mm_movemask_ps(_mm_cmplt_ps(v1, zero)) << 4)) << j;
        badv = _mm_or_si128(badv, _mm_cmpeq_epi32(_mm_and_si128(_mm_castps_si128(v0), expmask), expmask));
        badv = _mm_or_si128(badv, _mm_cmpeq_epi32(_mm_and_si128(_mm_castps_si128(v1), expmask), expmask));
        if (kL1) {
            a0 = _mm_add_pd(a0, _mm_andnot_pd(sign, _mm_cvtps_pd(v0)));
            a1 = _mm_add_pd(a1, _mm_andnot_pd(sign, _mm_cvtps_pd(_mm_movehl_ps(v0, v0))));
            a2 = _mm_add_pd(a2, _mm_andnot_pd(sign, _mm_cvtps_pd(v1)));
            a3 = _mm_add_pd(a3, _mm_andnot_pd(sign, _mm_cvtps_pd(_mm_movehl_ps(v1, v1))));
        }
    }
    nonfinite |= uint32_t(_mm_movemask_epi8(badv) != 0);
    if (kL1) {
        _mm_storeu_pd(lane, a0);
        _mm_storeu_pd(lane + 2, a1);
        _mm_storeu_pd(lane + 4, a2);
        _mm_storeu_pd(lane + 6, a3);
    }
#endif
    for (; j < n; ++j) {
        const float v = x[base + j];
        word |= uint64_t(v < 0.0f) << j;
        uint32_t u;
        std::memcpy(&u, &v, 4);
        nonfinite |= uint32_t((u & 0x7F800000u) == 0x7F800000u);
        if (kL1) lane[j & 7] += std::fabs(double(v));
    }
    return word;
}
}  // namespace

bool pack_signs(const float* x, uint64_t d, uint64_t* w, double* l1) {
    const int64_t nwords = int64_t(words_for(d));
    constexpr int64_t kWords = kBlock / 64;  // element blocks of kBlock, as in norm1()
    const int64_t nb = num_blocks(nwords, kWords);
    std::vector<double> parts(size_t(nb), 0.0);
    std::vector<uint32_t> bad(size_t(nb), 0);
    parallel_blocks(
        nwords,
        [&](int64_t b, int64_t lo, int64_t hi) {
            uint32_t nonfinite = 0;
            double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int64_t wi = lo; wi < hi; ++wi) {
                const uint64_t base = uint64_t(wi) * 64;
                const uint64_t n = std::min<uint64_t>(64, d - base);
                w[wi] = l1 ? pack_word<true>(x, base, n, nonfinite, lane) : pack_word<false>(x, base, n, nonfinite, lane);
            }
            bad[size_t(b)] = nonfinite;
            double sum = 0.0;
            for (double l : lane) sum += l;
            parts[size_t(b)] = sum;
        },
        kWords);
    if (l1) {
        // Same order as block_sum: one block is returned as is, several are added from 0.0.
        double sum = nb == 1 ? parts[0] : 0.0;
        if (nb > 1)
            for (double p : parts) sum += p;
        *l1 = sum;
    }
    for (uint32_t b : bad)
        if (b) return true;
    return false;
}

namespace {
constexpr uint64_t kStreamBytes = uint64_t(8) << 20;  // outputs beyond cache: non-temporal stores
}  // namespace

void unpack_signs(const uint64_t* w, uint64_t d, float scale, float* out) {
    // out[j] = scale with the sign bit of x_j: OR-ing the bit into scale's pattern (scale >= 0)
    // gives exactly -scale. Large outputs that do not fit in cache are written with streaming
    // stores (no read-for-ownership), which is what makes this run at copy speed.
    const uint32_t sbits = float_bits(scale);
    const int64_t nwords = int64_t(d / 64);
    const bool stream = d * 4 >= kStreamBytes && (reinterpret_cast<uintptr_t>(out) & 15) == 0;
    parallel_blocks(
        nwords,
        [&](int64_t, int64_t lo, int64_t hi) {
#ifdef __SSE2__
            alignas(16) static const uint32_t kMasks[16][4] = {
                {0, 0, 0, 0}, {1, 0, 0, 0}, {0, 1, 0, 0}, {1, 1, 0, 0}, {0, 0, 1, 0}, {1, 0, 1, 0},
                {0, 1, 1, 0}, {1, 1, 1, 0}, {0, 0, 0, 1}, {1, 0, 0, 1}, {0, 1, 0, 1}, {1, 1, 0, 1},
                {0, 0, 1, 1}, {1, 0, 1, 1}, {0, 1, 1, 1}, {1, 1, 1, 1}};
            const __m128i sv = _mm_set1_epi32(int(sbits));
            for (int64_t wi = lo; wi < hi; ++wi) {
                uint64_t word = w[wi];
                float* o = out + wi * 64;
                for (int q = 0; q < 16; ++q, word >>= 4) {
                    const __m128i m = _mm_slli_epi32(_mm_load_si128(reinterpret_cast<const __m128i*>(kMasks[word & 15])), 31);
                    const __m128 v = _mm_castsi128_ps(_mm_or_si128(sv, m));
                    if (stream)
                        _mm_stream_ps(o + 4 * q, v);
                    else
                        _mm_storeu_ps(o + 4 * q, v);
                }
            }
            if (stream) _mm_sfence();
#else
            for (int64_t wi = lo; wi < hi; ++wi)
                for (int i = 0; i < 64; ++i) out[wi * 64 + i] = bits_float(sbits | uint32_t((w[wi] >> i) & 1) << 31);
#endif
        },
        kBlock / 64);
    for (uint64_t j = uint64_t(nwords) * 64; j < d; ++j) out[j] = bits_float(sbits | uint32_t((w[j >> 6] >> (j & 63)) & 1) << 31);
}

// ---- Sign / ScaledSign ------------------------------------------------------------------------

void Sign::encode(const float* x, uint64_t d, const Key&, Message& msg, Workspace&) const {
    Section& s = msg.add_for_overwrite(d);  // pack_signs writes every word
    if (pack_signs(x, d, s.words.data())) fail("x contains NaN or Inf; compressors need finite input");
}

void Sign::decode(const Message&, SectionCursor& cur, uint64_t d, const Key&, float* out, Workspace&) const {
    const Section& s = cur.next("Sign");
    expect_bits(s, d, "Sign");
    unpack_signs(s.words.data(), d, 1.0f, out);
}

Properties Sign::properties(uint64_t) const { return Properties{}; }

void TernarySign::encode(const float* x, uint64_t d, const Key&, Message& msg, Workspace&) const {
    Section& s = msg.add_for_overwrite(d);
    if (pack_signs(x, d, s.words.data())) fail("x contains NaN or Inf; compressors need finite input");
    uint64_t zeros = 0;
    for (uint64_t j = 0; j < d; ++j) zeros += x[j] == 0.0f;
    Section& z = msg.add(zeros ? d : 0);
    if (!zeros) return;
    for (uint64_t j = 0; j < d; ++j)
        if (x[j] == 0.0f) {
            const uint64_t bit = uint64_t(1) << (j & 63);
            z.words[j >> 6] |= bit;
            s.words[j >> 6] &= ~bit;  // -0.0 packs as negative; a zero carries no sign
        }
}

void TernarySign::decode(const Message&, SectionCursor& cur, uint64_t d, const Key&, float* out, Workspace&) const {
    const Section& s = cur.next("TernarySign");
    expect_bits(s, d, "TernarySign");
    const Section& z = cur.next("TernarySign");
    if (z.bits != 0 && z.bits != d)
        fail("TernarySign: zero mask must have 0 or d bits, got " + std::to_string(z.bits) + " (malformed message)");
    unpack_signs(s.words.data(), d, 1.0f, out);
    if (z.bits == 0) return;
    bool any = false;
    for (uint64_t wi = 0; wi < words_for(d); ++wi) {
        const uint64_t zw = z.words[wi];
        if (zw & s.words[wi]) fail("TernarySign: a zero coordinate has its sign bit set (malformed message)");
        any = any || zw != 0;
        for (uint64_t w = zw; w; w &= w - 1) out[wi * 64 + uint64_t(__builtin_ctzll(w))] = 0.0f;
    }
    if (!any) fail("TernarySign: zero mask present but empty (malformed message)");
}

Properties TernarySign::properties(uint64_t) const { return Properties{}; }

void ScaledSign::encode(const float* x, uint64_t d, const Key&, Message& msg, Workspace&) const {
    Section& s = msg.add_for_overwrite(d);
    double l1 = 0.0;
    if (pack_signs(x, d, s.words.data(), &l1)) fail("x contains NaN or Inf; compressors need finite input");
    const float scale = float(l1 / double(d));
    Section& sc = msg.add(32);
    sc.words[0] = float_bits(scale);
}

void ScaledSign::decode(const Message&, SectionCursor& cur, uint64_t d, const Key&, float* out, Workspace&) const {
    const Section& s = cur.next("ScaledSign");
    expect_bits(s, d, "ScaledSign");
    const Section& sc = cur.next("ScaledSign");
    expect_bits(sc, 32, "ScaledSign");
    const float scale = bits_float(uint32_t(sc.words[0]));
    if (!std::isfinite(scale) || scale < 0.0f) fail("ScaledSign: scale in message is negative or not finite (malformed message)");
    unpack_signs(s.words.data(), d, scale, out);
}

Properties ScaledSign::properties(uint64_t d) const {
    Properties p;
    p.unbiased = false;
    p.delta = 1.0 / double(d);
    return p;
}

}  // namespace pyqsgd
