#include <atomic>
#include <cmath>
#include <cstring>

#include "pyqsgd/compressors/quant.hpp"
#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace pyqsgd {

namespace {
float read_scale(SectionCursor& cur, const char* who) {
    const Section& s = cur.next(who);
    expect_bits(s, 32, who);
    const float v = bits_float(uint32_t(s.words[0]));
    if (!std::isfinite(v) || v < 0.0f) fail(std::string(who) + ": scale in message is negative or not finite (malformed message)");
    return v;
}
void write_scale(Message& msg, float v) { msg.add(32).words[0] = float_bits(v); }
}  // namespace

// ---- QSGD -----------------------------------------------------------------------------------

QSGD::QSGD(uint32_t levels) : s_(levels) {
    // levels < 2^31 keeps a code (level << 1 | sign) within 32 bits.
    if (levels < 1 || levels > 0x7FFFFFFFu)
        fail("QSGD: levels must be in [1, 2^31 - 1], got levels=" + std::to_string(levels));
}

namespace {
// QSGD codes of 4 * ngroups coordinates, SSE2; identical to the scalar rule in QSGD::encode
// for s < 2^24 (then r <= s is exact in float32, truncation fits int32, and the cap at s is a
// no-op: r = s gives r - floor(r) = 0, which no uniform is below).
#ifdef __SSE2__
void qsgd_codes_sse2(const float* x, const uint32_t* raw, int ngroups, double scale, float sf, uint32_t* codes) {
    const __m128i absmask = _mm_set1_epi32(0x7FFFFFFF);
    const __m128d sc = _mm_set1_pd(scale);
    const __m128 smax = _mm_set1_ps(sf), unit = _mm_set1_ps(1.0f / 16777216.0f);
    const __m128i zero = _mm_setzero_si128();
    for (int q = 0; q < ngroups; ++q) {
        const __m128i xv = _mm_loadu_si128(reinterpret_cast<const __m128i*>(x + 4 * q));
        const __m128 a = _mm_castsi128_ps(_mm_and_si128(xv, absmask));
        const __m128d plo = _mm_mul_pd(_mm_cvtps_pd(a), sc);
        const __m128d phi = _mm_mul_pd(_mm_cvtps_pd(_mm_movehl_ps(a, a)), sc);
        const __m128 r = _mm_min_ps(_mm_movelh_ps(_mm_cvtpd_ps(plo), _mm_cvtpd_ps(phi)), smax);
        const __m128i fl = _mm_cvttps_epi32(r);
        const __m128 frac = _mm_sub_ps(r, _mm_cvtepi32_ps(fl));
        const __m128i rv = _mm_loadu_si128(reinterpret_cast<const __m128i*>(raw + 4 * q));
        const __m128 u = _mm_mul_ps(_mm_cvtepi32_ps(_mm_srli_epi32(rv, 8)), unit);
        const __m128i level = _mm_sub_epi32(fl, _mm_castps_si128(_mm_cmplt_ps(u, frac)));  // + 1 where u < frac
        const __m128i neg = _mm_and_si128(_mm_srli_epi32(xv, 31), _mm_cmpgt_epi32(level, zero));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + 4 * q), _mm_or_si128(_mm_slli_epi32(level, 1), neg));
    }
}
#endif
}  // namespace

void QSGD::encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace&) const {
    const float nf = float(norm2(x, d));
    if (!std::isfinite(nf)) fail_overflow("QSGD: ||x|| overflows float32; rescale x");
    write_scale(msg, nf);
    const unsigned wdt = width();
    if (nf == 0.0f) {  // all codes zero
        msg.add(d * wdt);
        return;
    }
    uint64_t* w = msg.add_for_overwrite(d * wdt).words.data();  // the packer writes every word
    // r_j = float(|x_j| * (s / ||x||)) with the product in double: s / ||x|| overflows float32
    // when ||x|| is tiny (subnormal x), and Inf * 0 would be NaN. r_j is clamped to s (rounding
    // can put it a hair above), so the truncation below stays in range; l = floor(r_j) and the
    // level is l + [u_j < r_j - l] (exact float subtraction), capped at s.
    const double scale = double(s_) / double(nf);
    const uint32_t s = s_;
    const float sf = float(s_);
    auto code = [&](uint64_t j, uint32_t raw) -> uint32_t {
        const float r = std::min(float(double(std::fabs(x[j])) * scale), sf);
        const uint32_t fl = uint32_t(r);
        uint32_t level = fl + uint32_t(to_unit_float(raw) < r - float(fl));
        level = std::min(level, s);
        // Branch-free (level is 0 at random): the sign bit only when level > 0.
        return (level << 1) | uint32_t((x[j] < 0.0f) & (level != 0));
    };
    write_codes_batch(w, d, wdt, key, [&](uint64_t j, int n, const uint32_t* raw, uint32_t* codes) {
        int l = 0;
#ifdef __SSE2__
        if (s < (1u << 24)) {
            qsgd_codes_sse2(x + j, raw, n / 4, scale, sf, codes);
            l = n / 4 * 4;
        }
#endif
        for (; l < n; ++l) codes[l] = code(j + uint64_t(l), raw[l]);
    });
}

void QSGD::decode(const Message&, SectionCursor& cur, uint64_t d, const Key&, float* out, Workspace& ws) const {
    const float nf = read_scale(cur, "QSGD");
    const Section& s = cur.next("QSGD");
    const unsigned wdt = width();
    expect_bits(s, d * wdt, "QSGD");
    const double nd = double(nf), sd = double(s_);
    const uint64_t smax = s_;
    // Code = level << 1 | sign; level > s and "minus zero" (level 0, sign 1) are invalid.
    // level ||x|| / s in double, rounded once: a float32 unit ||x||/s would lose its precision
    // (and the codebook) when ||x|| is subnormal.
    auto value = [&](uint64_t code, uint32_t& ok) -> float {
        const uint64_t level = code >> 1;
        ok &= uint32_t(level <= smax && !(level == 0 && (code & 1)));
        const float v = float(double(level) * nd / sd);
        return (code & 1) ? -v : v;
    };
    if (wdt <= 12) {  // table lookup: one load per coordinate, no branches
        std::vector<float>& table = ws.f(0);
        std::vector<uint32_t>& valid = ws.u(0);
        table.resize(size_t(1) << wdt);
        valid.resize(size_t(1) << wdt);
        for (uint64_t c = 0; c < table.size(); ++c) {
            uint32_t ok = 1;
            table[c] = value(c, ok);
            valid[c] = ok;
        }
        read_codes_lut(s.words.data(), d, wdt, table.data(), valid.data(), out, "QSGD");
    } else {
        read_codes(s.words.data(), d, wdt, out, "QSGD", value);
    }
}

Properties QSGD::properties(uint64_t d) const {
    Properties p;
    p.unbiased = true;
    const double s = double(s_);
    p.omega = std::min(double(d) / (s * s), std::sqrt(double(d)) / s);
    return p;
}

// ---- TernGrad -------------------------------------------------------------------------------

void TernGrad::encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace&) const {
    const float sf = float(norm_inf(x, d));
    write_scale(msg, sf);
    if (sf == 0.0f) {
        msg.add(2 * d);
        return;
    }
    uint64_t* w = msg.add_for_overwrite(2 * d).words.data();
    write_codes(w, d, 2, key, [&](uint64_t j, uint32_t raw) -> uint64_t {
        const float p = std::fabs(x[j]) / sf;
        const uint64_t keep = uint64_t(to_unit_float(raw) < p);
        return keep | (keep & uint64_t(x[j] < 0.0f)) << 1;  // 0 zero, 1 plus, 3 minus
    });
}

void TernGrad::decode(const Message&, SectionCursor& cur, uint64_t d, const Key&, float* out, Workspace&) const {
    const float sf = read_scale(cur, "TernGrad");
    const Section& s = cur.next("TernGrad");
    expect_bits(s, 2 * d, "TernGrad");
    const float table[4] = {0.0f, sf, 0.0f, -sf};
    const uint32_t valid[4] = {1, 1, 0, 1};  // code 2 is outside the codebook
    read_codes_lut(s.words.data(), d, 2, table, valid, out, "TernGrad");
}

Properties TernGrad::properties(uint64_t d) const {
    Properties p;
    p.unbiased = true;
    p.omega = (std::sqrt(double(d)) - 1.0) / 2.0;
    return p;
}

// ---- Natural --------------------------------------------------------------------------------

void Natural::encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace&) const {
    uint64_t* w = msg.add_for_overwrite(9 * d).words.data();
    std::atomic<uint32_t> bad{0};  // 1: non-finite, 2: |x| >= 2^127 (rounding up would overflow)
    write_codes(w, d, 9, key, [&](uint64_t j, uint32_t raw) -> uint64_t {
        uint32_t u;
        std::memcpy(&u, x + j, 4);
        const uint32_t neg = u >> 31, mag = u & 0x7FFFFFFFu;
        if (mag == 0) return 0;
        const uint32_t e = mag >> 23, mant = mag & 0x7FFFFFu;
        if (e >= 254) {
            bad.fetch_or(e == 255 ? 1u : 2u, std::memory_order_relaxed);
            return 0;
        }
        // Round up with probability mant / 2^23 (exact integer comparison of 24-bit draws). A
        // subnormal (e = 0) lies in [0, 2^-126): up to 2^-126 with probability x / 2^-126, else 0.
        const bool up = (raw >> 8) < (mant << 1);
        const uint32_t eo = e == 0 ? (up ? 1u : 0u) : e + uint32_t(up);
        return eo == 0 ? 0 : (uint64_t(eo) << 1) | neg;
    });
    const uint32_t b = bad.load();
    if (b & 1u) fail("x contains NaN or Inf; compressors need finite input");
    if (b & 2u) fail("Natural: |x_j| >= 2^127 cannot be rounded up within float32; rescale x");
}

void Natural::decode(const Message&, SectionCursor& cur, uint64_t d, const Key&, float* out, Workspace& ws) const {
    const Section& s = cur.next("Natural");
    expect_bits(s, 9 * d, "Natural");
    // Code = exponent << 1 | sign; exponent 255 (Inf/NaN) and "minus zero" are invalid.
    std::vector<float>& table = ws.f(0);
    std::vector<uint32_t>& valid = ws.u(0);
    table.resize(512);
    valid.resize(512);
    for (uint32_t c = 0; c < 512; ++c) {
        const uint32_t e = c >> 1, neg = c & 1;
        valid[c] = uint32_t(e != 255 && !(e == 0 && neg));
        table[c] = (e == 0 || e == 255) ? 0.0f : bits_float((neg << 31) | (e << 23));
    }
    read_codes_lut(s.words.data(), d, 9, table.data(), valid.data(), out, "Natural");
}

Properties Natural::properties(uint64_t) const {
    Properties p;
    p.unbiased = true;
    p.omega = 1.0 / 8.0;
    return p;
}

}  // namespace pyqsgd
