#include "pyqsgd/compressor.hpp"

#include <algorithm>
#include <cstring>

#include "pyqsgd/parallel.hpp"
#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace pyqsgd {

[[noreturn]] void fail(const std::string& what) { throw std::invalid_argument(what); }
[[noreturn]] void fail_overflow(const std::string& what) { throw Float32Overflow(what); }

uint32_t Compressor::compute_fingerprint() const {
    // FNV-1a of the canonical parameter text.
    uint32_t h = 2166136261u;
    for (unsigned char c : name()) {
        h ^= c;
        h *= 16777619u;
    }
    return h;
}

void Compressor::compress(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const {
    if (d == 0) fail(name() + ": x must be non-empty");
    if (d >= (uint64_t(1) << 32)) fail(name() + ": x has more than 2^32 - 1 entries");
    check(d);
    if (!checks_finite()) check_finite(x, d, "x");
    msg.begin(tag(), fingerprint(), d, key);
    encode(x, d, key, msg, ws);
}

void Compressor::check_message(const Message& msg) const {
    if (msg.tag != tag() || msg.fingerprint != fingerprint())
        fail(name() + ".decompress: the message was not produced by this compressor (tag/parameter fingerprint differ)");
    if (msg.d == 0 || msg.d >= (uint64_t(1) << 32)) fail(name() + ".decompress: invalid dimension in message");
    check(msg.d);
    const uint64_t want = expected_bits(msg.d);
    if (want != kUnknownBits && msg.bits() != want)
        fail(name() + ".decompress: message has " + std::to_string(msg.bits()) + " payload bits, expected " +
             std::to_string(want) + " for d=" + std::to_string(msg.d) + " (malformed message)");
}

void Compressor::decompress(const Message& msg, float* out, Workspace& ws) const {
    check_message(msg);
    SectionCursor cur(msg);
    decode(msg, cur, msg.d, msg.key, out, ws);
    if (!cur.done()) fail(name() + ".decompress: message has extra sections");
}

namespace {
// True iff some x[j] is NaN or Inf (exponent bits all ones); fixed blocks, parallel.
bool any_nonfinite(const float* x, uint64_t d) {
    const double bad = block_sum(int64_t(d), [&](int64_t lo, int64_t hi) {
        uint32_t acc = 0;
        for (int64_t j = lo; j < hi; ++j) {
            uint32_t u;
            std::memcpy(&u, x + j, 4);
            acc |= uint32_t((u & 0x7F800000u) == 0x7F800000u);
        }
        return double(acc);
    });
    return bad != 0.0;
}
}  // namespace

void check_finite(const float* x, uint64_t d, const char* who) {
    if (any_nonfinite(x, d)) fail(std::string(who) + " contains NaN or Inf; compressors need finite input");
}

void check_decoded_finite(const float* out, uint64_t n, const char* who) {
    if (any_nonfinite(out, n)) fail(std::string(who) + ": message decodes to NaN or Inf (malformed message)");
}

namespace {
// Sum over [lo, hi) of |x_j| (kSquare = false) or x_j^2 (true) in double, in 8 interleaved
// lanes: lane l accumulates the j with (j - lo) % 8 == l in index order, then the lanes are
// added in order 0..7. Eight independent chains let the SSE2 path run at memory speed; the
// scalar path below performs the very same additions, so both give bitwise-identical sums
// (the NumPy reference twins reproduce this order exactly).
template <bool kSquare>
double lane_sum8(const float* x, int64_t lo, int64_t hi) {
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t j = lo;
#ifdef __SSE2__
    __m128d a0 = _mm_setzero_pd(), a1 = _mm_setzero_pd(), a2 = _mm_setzero_pd(), a3 = _mm_setzero_pd();
    const __m128d sign = _mm_set1_pd(-0.0);
    auto term = [&](__m128d v) { return kSquare ? _mm_mul_pd(v, v) : _mm_andnot_pd(sign, v); };
    for (; j + 8 <= hi; j += 8) {
        const __m128 v0 = _mm_loadu_ps(x + j), v1 = _mm_loadu_ps(x + j + 4);
        a0 = _mm_add_pd(a0, term(_mm_cvtps_pd(v0)));
        a1 = _mm_add_pd(a1, term(_mm_cvtps_pd(_mm_movehl_ps(v0, v0))));
        a2 = _mm_add_pd(a2, term(_mm_cvtps_pd(v1)));
        a3 = _mm_add_pd(a3, term(_mm_cvtps_pd(_mm_movehl_ps(v1, v1))));
    }
    _mm_storeu_pd(lane + 0, a0);
    _mm_storeu_pd(lane + 2, a1);
    _mm_storeu_pd(lane + 4, a2);
    _mm_storeu_pd(lane + 6, a3);
#endif
    for (; j < hi; ++j) {
        const double v = double(x[j]);
        lane[(j - lo) & 7] += kSquare ? v * v : std::fabs(v);
    }
    double s = 0.0;
    for (double l : lane) s += l;
    return s;
}
}  // namespace

double block_sum_abs(const float* x, int64_t lo, int64_t hi) { return lane_sum8<false>(x, lo, hi); }
double block_sum_sq(const float* x, int64_t lo, int64_t hi) { return lane_sum8<true>(x, lo, hi); }

bool copy_checked(float* dst, const float* src, uint64_t n) {
    const bool stream = n * 4 >= (uint64_t(8) << 20) && (reinterpret_cast<uintptr_t>(dst) & 15) == 0;
    const double bad = block_sum(int64_t(n), [&](int64_t lo, int64_t hi) {
        int64_t j = lo;
        uint32_t acc = 0;
#ifdef __SSE2__
        const __m128i expmask = _mm_set1_epi32(0x7F800000);
        __m128i badv = _mm_setzero_si128();
        for (; j + 4 <= hi; j += 4) {
            const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + j));
            badv = _mm_or_si128(badv, _mm_cmpeq_epi32(_mm_and_si128(v, expmask), expmask));
            if (stream)
                _mm_stream_si128(reinterpret_cast<__m128i*>(dst + j), v);
            else
                _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + j), v);
        }
        if (stream) _mm_sfence();
        acc = uint32_t(_mm_movemask_epi8(badv) != 0);
#endif
        for (; j < hi; ++j) {
            uint32_t u;
            std::memcpy(&u, src + j, 4);
            std::memcpy(dst + j, &u, 4);
            acc |= uint32_t((u & 0x7F800000u) == 0x7F800000u);
        }
        return double(acc);
    });
    return bad != 0.0;
}

double norm2(const float* x, uint64_t d) {
    return std::sqrt(block_sum(int64_t(d), [&](int64_t lo, int64_t hi) { return lane_sum8<true>(x, lo, hi); }));
}

double norm1(const float* x, uint64_t d) {
    return block_sum(int64_t(d), [&](int64_t lo, int64_t hi) { return lane_sum8<false>(x, lo, hi); });
}

double norm_inf(const float* x, uint64_t d) {
    float m = 0.0f;
    for (uint64_t j = 0; j < d; ++j) m = std::max(m, std::fabs(x[j]));
    return double(m);
}

void place_selection(const Selection& sel, const float* values, uint64_t d, float* out) {
    if (sel.dense) {
        std::memcpy(out, values, d * sizeof(float));
        return;
    }
    std::memset(out, 0, d * sizeof(float));
    for (size_t i = 0; i < sel.indices.size(); ++i) out[sel.indices[i]] = values[i];
}

void expect_bits(const Section& s, uint64_t expected, const char* who) {
    if (s.bits != expected)
        fail(std::string(who) + ": section has " + std::to_string(s.bits) + " bits, expected " +
             std::to_string(expected) + " (malformed message)");
}

}  // namespace pyqsgd
