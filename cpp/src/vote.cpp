#include "pyqsgd/vote.hpp"

#include <string>

#include "pyqsgd/compressors/basic.hpp"
#include "pyqsgd/parallel.hpp"

namespace pyqsgd {

const Section& sign_section(const Message& msg, uint64_t d, const char* who) {
    if (msg.tag != kSign && msg.tag != kScaledSign)
        fail(std::string(who) + ": needs sign messages (Sign or ScaledSign), got a message with tag " +
             std::to_string(msg.tag));
    if (msg.d != d) fail(std::string(who) + ": messages disagree on the dimension d");
    if (msg.size() < 1 || msg.section(0).bits != d) fail(std::string(who) + ": malformed sign message");
    return msg.section(0);
}

namespace {
template <class Weight>
uint64_t vote_impl(const std::vector<const Message*>& msgs, uint64_t d, float* out, Weight weight,
                   double* sums = nullptr) {
    std::vector<const uint64_t*> words;
    for (const Message* m : msgs) words.push_back(sign_section(*m, d, "sign vote").words.data());
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
                    for (unsigned b = 0; b < n; ++b) {
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
AgreementCount agreement(const Message& msg, uint64_t d, uint8_t* code, Reference ref) {
    const uint64_t* bits = sign_section(msg, d, "sign vote").words.data();
    AgreementCount c;
    for (uint64_t j = 0; j < d; ++j) {
        const double s = ((bits[j >> 6] >> (j & 63)) & 1u) ? -1.0 : 1.0;
        const double v = ref(j, s);
        const uint8_t a = v == 0.0 ? kTie : ((v > 0.0) == (s > 0.0) ? kAgree : kDisagree);
        c.agree += a == kAgree;
        c.counted += a != kTie;
        if (code) code[j] = a;
    }
    return c;
}
}  // namespace

AgreementCount count_agreement(const Message& msg, const float* vote, uint64_t d, uint8_t* code) {
    return agreement(msg, d, code, [&](uint64_t j, double) { return double(vote[j]); });
}

AgreementCount count_agreement_loo(const Message& msg, const double* sums, const double* w, size_t w_stride,
                                   uint64_t d, uint8_t* code) {
    return agreement(msg, d, code, [&](uint64_t j, double s) { return sums[j] - w[j * w_stride] * s; });
}

}  // namespace pyqsgd
