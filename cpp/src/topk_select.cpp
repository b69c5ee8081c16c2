// Exact Top-K selection (ties toward the smaller index) in one streaming pass over x.
//
// A strided sample guesses a threshold just below the k-th largest |x_j|; one SIMD pass keeps
// the coordinates at or above it in a bounded candidate buffer, which is compacted to the k
// best whenever it fills. No d-sized scratch is touched, and the result does not depend on
// the guess (only the speed does).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "pyqsgd/compressors/sparse.hpp"

namespace pyqsgd {

namespace {
inline uint32_t abs_key(const float* x, uint64_t j) {  // |x_j| as ordered integer bits
    uint32_t u;
    std::memcpy(&u, x + j, 4);
    return u & 0x7FFFFFFFu;
}

// Candidates of a Top-K search: (index, float bits) pairs in increasing index order, bounded
// by `cap`; a candidate's key is its bits without the sign. Keeping the value bits means the
// kept values need no second, cache-missing gather from x. Invariant: every coordinate not in
// the buffer is beaten by k kept ones under the order "larger key, then smaller index", so the
// exact top k are always among the candidates.
struct TopKCandidates {
    uint32_t* idx;
    uint32_t* bits;
    uint32_t* tmp;  // scratch for nth_element
    uint64_t c = 0, k, cap;
    uint32_t t;  // a coordinate is a candidate iff its key >= t

    static uint32_t key(uint32_t b) { return b & 0x7FFFFFFFu; }

    // Keeps exactly the k best candidates (ties: the earliest ones) and raises t above the
    // k-th largest key: later coordinates equal to it lose the tie to the ones kept.
    void compact() {
        for (uint64_t i = 0; i < c; ++i) tmp[i] = key(bits[i]);
        std::nth_element(tmp, tmp + (k - 1), tmp + c, std::greater<uint32_t>());
        const uint32_t kth = tmp[k - 1];
        uint64_t above = 0;
        for (uint64_t i = 0; i < c; ++i) above += (key(bits[i]) > kth);
        uint64_t ties = k - above, n = 0;
        for (uint64_t i = 0; i < c; ++i) {
            const uint32_t ki = key(bits[i]);
            const bool take = ki > kth || (ki == kth && ties > 0);
            ties -= uint64_t(take && ki == kth);
            idx[n] = idx[i];
            bits[n] = bits[i];
            n += take;
        }
        c = n;
        t = kth + 1;  // kth < 0x7F800000 (finite), so no overflow
    }

    // Scans x[0..d): branch-free test of 16 keys at a time against t; NaN/Inf flagged.
    bool scan(const float* x, uint64_t d) {
        uint32_t nonfinite = 0;
        uint64_t j = 0;
        for (; j + 16 <= d; j += 16) {
            if (c + 16 > cap) compact();
            uint32_t mask = 0;
#ifdef __SSE2__
            const __m128i absmask = _mm_set1_epi32(0x7FFFFFFF), lim = _mm_set1_epi32(0x7F7FFFFF);
            const __m128i tv = _mm_set1_epi32(int(t) - 1);  // keys < 2^31: signed compare is exact
            __m128i badv = _mm_setzero_si128();
            for (int q = 0; q < 4; ++q) {
                const __m128i v = _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + j + 4 * q)), absmask);
                mask |= uint32_t(_mm_movemask_ps(_mm_castsi128_ps(_mm_cmpgt_epi32(v, tv)))) << (4 * q);
                badv = _mm_or_si128(badv, _mm_cmpgt_epi32(v, lim));
            }
            nonfinite |= uint32_t(_mm_movemask_epi8(badv));
#else
            for (unsigned q = 0; q < 16; ++q) {
                const uint32_t u = abs_key(x, j + q);
                mask |= uint32_t(u >= t) << q;
                nonfinite |= uint32_t(u >= 0x7F800000u);
            }
#endif
            while (mask) {
                const unsigned q = unsigned(__builtin_ctz(mask));
                idx[c] = uint32_t(j + q);
                std::memcpy(bits + c, x + j + q, 4);
                ++c;
                mask &= mask - 1;
            }
        }
        for (; j < d; ++j) {
            if (c + 1 > cap) compact();
            const uint32_t u = abs_key(x, j);
            nonfinite |= uint32_t(u >= 0x7F800000u);
            idx[c] = uint32_t(j);
            std::memcpy(bits + c, x + j, 4);
            c += (u >= t);
        }
        return nonfinite != 0;
    }
};
}  // namespace

void select_topk(const float* x, uint64_t d, uint64_t k, Workspace& ws, std::vector<uint32_t>& idx,
                 std::vector<float>* values) {
    idx.resize(k);
    if (values) values->resize(k);
    if (k == d) {
        for (uint64_t j = 0; j < d; ++j) idx[j] = uint32_t(j);
        check_finite(x, d, "x");
        if (values) std::copy(x, x + d, values->begin());
        return;
    }
    // 1. Guess a threshold below the k-th largest |x| from a fixed strided sample, aiming at
    //    ~1.5k candidates; the sample positions depend only on d, so the result is deterministic
    //    (and the final selection is exact whatever the guess).
    //    The sample is d/16 positions, at least 1024 and at most 16384: selecting within it is
    //    the costly part for small d, where the whole vector would otherwise be sampled.
    std::vector<uint32_t>& sample = ws.u(0);
    const uint64_t ns = std::min<uint64_t>(d, std::clamp<uint64_t>(d / 16, 1024, 1 << 14));
    sample.resize(ns);
    // Positions floor(i d / ns), stepped without a 64-bit division per sample.
    const uint64_t step = d / ns, extra = d % ns;
    for (uint64_t i = 0, pos = 0, rem = 0; i < ns; ++i) {
        sample[i] = abs_key(x, pos);
        pos += step;
        rem += extra;
        if (rem >= ns) {
            ++pos;
            rem -= ns;
        }
    }
    // The sample count above the true k-th largest is ~Binomial(ns, k/d): mean q, sd <= sqrt(q).
    // Taking rank q + 4 sqrt(q) + 8 keeps the guess below the k-th largest except with
    // probability ~3e-5 (then a second pass runs), while admitting only ~k + 4 sqrt(q) d/ns
    // candidates.
    const double q = double(k) / double(d) * double(ns);
    const uint64_t r = std::min<uint64_t>(ns - 1, uint64_t(q + 4.0 * std::sqrt(q) + 8.0));
    std::nth_element(sample.begin(), sample.begin() + int64_t(r), sample.end(), std::greater<uint32_t>());

    // 2. One streaming pass into a bounded candidate buffer (compacted to k when full), so no
    //    d-sized scratch is touched. If the guess was too high (fewer than k candidates), scan
    //    again from threshold 0: compaction then keeps the buffer bounded.
    const uint64_t cap = std::min<uint64_t>(d, std::max<uint64_t>(2 * k, k + 4096));
    std::vector<uint32_t>& ci = ws.u(1);
    std::vector<uint32_t>& ck = ws.u(2);
    std::vector<uint32_t>& ct = ws.u(3);
    if (ci.size() < cap + 16) {
        ci.resize(cap + 16);
        ck.resize(cap + 16);
        ct.resize(cap + 16);
    }
    TopKCandidates cand{ci.data(), ck.data(), ct.data(), 0, k, cap + (cap == d ? 16 : 0), sample[r]};
    if (cand.scan(x, d)) fail("x contains NaN or Inf; compressors need finite input");
    if (cand.c < k) {
        cand.c = 0;
        cand.t = 0;
        cand.scan(x, d);
    }
    // 3. Exact selection among the candidates: the k best, ties to the smaller index.
    if (cand.c > k) cand.compact();
    std::copy(cand.idx, cand.idx + k, idx.begin());
    if (values) std::memcpy(values->data(), cand.bits, k * sizeof(float));
}

}  // namespace pyqsgd
