#include <cstring>
#include <vector>

#include "pyqsgd/compressors/basic.hpp"
#include "pyqsgd/parallel.hpp"
#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace pyqsgd {

// ---- Identity -------------------------------------------------------------------------------

void Identity::encode(const float* x, uint64_t d, const Key&, Message& msg, Workspace&) const {
    Section& s = msg.add(32 * d);
    std::memcpy(s.words.data(), x, d * sizeof(float));  // little-endian float32 stream
}

void Identity::decode(const Message&, SectionCursor& cur, uint64_t d, const Key&, float* out, Workspace&) const {
    const Section& s = cur.next("Identity");
    expect_bits(s, 32 * d, "Identity");
    std::memcpy(out, s.words.data(), d * sizeof(float));
    check_decoded_finite(out, d, "Identity");
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
            for (int64_t wi = lo; wi < hi; ++wi) {
                const uint64_t base = uint64_t(wi) * 64;
                const uint64_t n = std::min<uint64_t>(64, d - base);
                uint64_t word = 0;
                uint64_t j = 0;
#ifdef __SSE2__
                const __m128 zero = _mm_setzero_ps();
                const __m128i expmask = _mm_set1_epi32(0x7F800000);
                __m128i badv = _mm_setzero_si128();
                for (; j + 4 <= n; j += 4) {
                    const __m128 v = _mm_loadu_ps(x + base + j);
                    word |= uint64_t(_mm_movemask_ps(_mm_cmplt_ps(v, zero))) << j;
                    const __m128i e = _mm_and_si128(_mm_castps_si128(v), expmask);
                    badv = _mm_or_si128(badv, _mm_cmpeq_epi32(e, expmask));
                }
                nonfinite |= uint32_t(_mm_movemask_epi8(badv) != 0);
#endif
                for (; j < n; ++j) {
                    const float v = x[base + j];
                    word |= uint64_t(v < 0.0f) << j;
                    uint32_t u;
                    std::memcpy(&u, &v, 4);
                    nonfinite |= uint32_t((u & 0x7F800000u) == 0x7F800000u);
                }
                w[wi] = word;
            }
            bad[size_t(b)] = nonfinite;
            if (l1) parts[size_t(b)] = block_sum_abs(x, lo * 64, std::min<int64_t>(int64_t(d), hi * 64));
        },
        kWords);
    if (l1) {
        // Same order as block_sum: one block is returned as is, several are added from 0.0.
        double s = nb == 1 ? parts[0] : 0.0;
        if (nb > 1)
            for (double p : parts) s += p;
        *l1 = s;
    }
    for (uint32_t b : bad)
        if (b) return true;
    return false;
}

namespace {
// 256 bytes -> 8 signs each: decoding writes whole 8-float rows instead of testing bits.
struct SignTable {
    float row[256][8];
    SignTable() {
        for (int b = 0; b < 256; ++b)
            for (int i = 0; i < 8; ++i) row[b][i] = (b >> i) & 1 ? -1.0f : 1.0f;
    }
};
const SignTable kSignTable;
}  // namespace

void unpack_signs(const uint64_t* w, uint64_t d, float scale, float* out) {
    const uint64_t full_bytes = d / 8;
    parallel_blocks(int64_t(full_bytes), [&](int64_t, int64_t lo, int64_t hi) {
        for (int64_t b = lo; b < hi; ++b) {
            const unsigned byte = unsigned((w[b >> 3] >> ((b & 7) * 8)) & 0xFF);
            const float* row = kSignTable.row[byte];
            float* o = out + b * 8;
            for (int i = 0; i < 8; ++i) o[i] = row[i] * scale;
        }
    });
    for (uint64_t j = full_bytes * 8; j < d; ++j) out[j] = ((w[j >> 6] >> (j & 63)) & 1) ? -scale : scale;
}

// ---- Sign / ScaledSign ------------------------------------------------------------------------

void Sign::encode(const float* x, uint64_t d, const Key&, Message& msg, Workspace&) const {
    Section& s = msg.add(d);
    if (pack_signs(x, d, s.words.data())) fail("x contains NaN or Inf; compressors need finite input");
}

void Sign::decode(const Message&, SectionCursor& cur, uint64_t d, const Key&, float* out, Workspace&) const {
    const Section& s = cur.next("Sign");
    expect_bits(s, d, "Sign");
    unpack_signs(s.words.data(), d, 1.0f, out);
}

Properties Sign::properties(uint64_t) const { return Properties{}; }

void ScaledSign::encode(const float* x, uint64_t d, const Key&, Message& msg, Workspace&) const {
    Section& s = msg.add(d);
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
