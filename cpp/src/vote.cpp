#include "pyqsgd/vote.hpp"

#include <string>

#include "pyqsgd/compressors/basic.hpp"
#include "pyqsgd/parallel.hpp"

namespace pyqsgd {

const Section& sign_section(const Message& msg, uint64_t d, const char* who) {
    if (msg.tag != kSign && msg.tag != kScaledSign && msg.tag != kTernarySign)
        fail(std::string(who) + ": needs sign messages (Sign, ScaledSign or TernarySign), got a message with tag " +
             std::to_string(msg.tag));
    if (msg.d != d) fail(std::string(who) + ": messages disagree on the dimension d");
    if (msg.size() < 1 || msg.section(0).bits != d) fail(std::string(who) + ": malformed sign message");
    if (msg.tag == kTernarySign) {
        if (msg.size() != 2 || (msg.section(1).bits != 0 && msg.section(1).bits != d))
            fail(std::string(who) + ": malformed TernarySign message (zero mask must have 0 or d bits)");
        if (msg.section(1).bits) {
            const Section& s = msg.section(0);
            const Section& z = msg.section(1);
            uint64_t any = 0;
            for (size_t wi = 0; wi < z.words.size(); ++wi) {
                if (z.words[wi] & s.words[wi])
                    fail(std::string(who) + ": malformed TernarySign message (a zero has its sign bit set)");
                any |= z.words[wi];
            }
            if (!any) fail(std::string(who) + ": malformed TernarySign message (empty zero mask)");
        }
    }
    return msg.section(0);
}

const uint64_t* zero_mask(const Message& msg, uint64_t d, const char* who) {
    sign_section(msg, d, who);
    if (msg.tag != kTernarySign || msg.section(1).bits == 0) return nullptr;
    return msg.section(1).words.data();
}

namespace {
template <class Weight>
uint64_t vote_impl(const std::vector<const Message*>& msgs, uint64_t d, float* out, Weight weight,
                   double* sums = nullptr) {
    std::vector<const uint64_t*> words, zeros;  // zeros[i]: worker i's zero mask or nullptr
    for (const Message* m : msgs) {
        words.push_back(sign_section(*m, d, "sign vote").words.data());
        zeros.push_back(zero_mask(*m, d, "sign vote"));
    }
    const int64_t nwords = int64_t(words_for(d));
    const double ties = block_sum(
        nwords,
        [&](int64_t lo, int64_t hi) {
            double t = 0.0;
            double acc[64];
            for (int64_t wi = lo; wi < hi; ++wi) {
                const uint64_t base = uint64_t(wi) * 64;
                const unsigned n = unsigned(std::min<uint64_t>(64, d - base));
                for (unsigned b = 0; b < n; ++b) acc[b] = 0.0;
                for (size_t i = 0; i < words.size(); ++i) {
                    const uint64_t word = words[i][wi];
                    const uint64_t zero = zeros[i] ? zeros[i][wi] : 0;
                    for (unsigned b = 0; b < n; ++b) {
                        if ((zero >> b) & 1u) continue;  // s_ij = 0 adds nothing
                        const double w = weight(i, base + b);
                        acc[b] += ((word >> b) & 1u) ? -w : w;
                    }
                }
                for (unsigned b = 0; b < n; ++b) {
                    out[base + b] = acc[b] > 0.0 ? 1.0f : (acc[b] < 0.0 ? -1.0f : 0.0f);
                    if (sums) sums[base + b] = acc[b];
                    t += acc[b] == 0.0 ? 1.0 : 0.0;
                }
            }
            return t;
        },
        kBlock / 64, double(msgs.size()) * 64.0);
    return uint64_t(ties);
}
}  // namespace

uint64_t sign_vote(const std::vector<const Message*>& msgs, const double* w, uint64_t d, float* out,
                   double* sums) {
    if (w) return vote_impl(msgs, d, out, [&](size_t i, uint64_t) { return w[i]; }, sums);
    return vote_impl(msgs, d, out, [](size_t, uint64_t) { return 1.0; }, sums);
}

uint64_t sign_vote_per_coordinate(const std::vector<const Message*>& msgs, const double* W, uint64_t d, float* out,
                                  double* sums) {
    return vote_impl(msgs, d, out, [&](size_t i, uint64_t j) { return W[i * d + j]; }, sums);
}

namespace {
template <class Reference>
AgreementCount agreement(const Message& msg, uint64_t d, uint8_t* code, bool ties_disagree, Reference ref) {
    const uint64_t* bits = sign_section(msg, d, "sign vote").words.data();
    const uint64_t* zeros = zero_mask(msg, d, "sign vote");
    AgreementCount c;
    for (uint64_t j = 0; j < d; ++j) {
        const bool zero = zeros && ((zeros[j >> 6] >> (j & 63)) & 1u);
        const double s = zero ? 0.0 : (((bits[j >> 6] >> (j & 63)) & 1u) ? -1.0 : 1.0);
        const double v = ref(j, s);
        const bool same = s * v > 0.0;  // s_ij = sign(v), both nonzero
        const uint8_t a = (v == 0.0 && !ties_disagree) ? kTie : (same ? kAgree : kDisagree);
        c.agree += a == kAgree;
        c.counted += a != kTie;
        if (code) code[j] = a;
    }
    return c;
}
}  // namespace

AgreementCount count_agreement(const Message& msg, const float* vote, uint64_t d, uint8_t* code,
                               bool ties_disagree) {
    return agreement(msg, d, code, ties_disagree, [&](uint64_t j, double) { return double(vote[j]); });
}

AgreementCount count_agreement_loo(const Message& msg, const double* sums, const double* w, size_t w_stride,
                                   uint64_t d, uint8_t* code) {
    return agreement(msg, d, code, false, [&](uint64_t j, double s) { return sums[j] - w[j * w_stride] * s; });
}

}  // namespace pyqsgd
