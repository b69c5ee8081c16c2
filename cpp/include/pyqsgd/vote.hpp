// Sign voting on packed sign messages (signSGD-MV / -FV): no float decoding needed.
//
// A sign message (Sign, ScaledSign or TernarySign) carries a d-bit section, bit 1 = negative;
// a TernarySign message may add a zero mask (s_ij = 0 there). The vote of coordinate j is
// sign(sum_i w_i s_ij), ties (an exactly zero sum) give 0.
#pragma once
#include <vector>

#include "pyqsgd/message.hpp"

namespace pyqsgd {

// Returns the sign bits of a Sign/ScaledSign/TernarySign message (validated), or throws.
const Section& sign_section(const Message& msg, uint64_t d, const char* who);
// The zero mask of a TernarySign message with some zero coordinate (validated), else nullptr.
const uint64_t* zero_mask(const Message& msg, uint64_t d, const char* who);

// out[j] = sign(sum_i w[i] s_ij) in {-1, 0, +1}; w == nullptr means all weights 1 (majority).
// Summation runs over workers in order inside fixed coordinate blocks. Returns the number of
// ties (zero votes). `sums`, when given, receives the weighted sums themselves.
uint64_t sign_vote(const std::vector<const Message*>& msgs, const double* w, uint64_t d, float* out,
                   double* sums = nullptr);

// Per-coordinate weights: out[j] = sign(sum_i W[i*d + j] s_ij).
uint64_t sign_vote_per_coordinate(const std::vector<const Message*>& msgs, const double* W, uint64_t d, float* out,
                                  double* sums = nullptr);

// How a worker's sign compares with a reference vote, per coordinate (the counters of
// federated voting). By default a tied reference (zero) is not evidence about the worker
// either way (kTie), and a worker's zero sign disagrees with a nonzero reference. With
// `ties_disagree` (the authors' rule) there is no kTie: worker i agrees on j iff
// s_ij * ref_j = +1, so a tied reference is a disagreement for every worker.
enum Agreement : uint8_t { kDisagree = 0, kAgree = 1, kTie = 2 };
struct AgreementCount {
    uint64_t agree = 0, counted = 0;  // counted = coordinates whose reference is not a tie
};

// Against the vote itself: code[j] compares s_j with vote[j].
AgreementCount count_agreement(const Message& msg, const float* vote, uint64_t d, uint8_t* code = nullptr,
                               bool ties_disagree = false);
// Against the *other* workers' vote sign(sums[j] - w_j s_j) (leave-one-out); w_j = w[j * w_stride]
// (stride 0: one weight for all coordinates).
AgreementCount count_agreement_loo(const Message& msg, const double* sums, const double* w, size_t w_stride,
                                   uint64_t d, uint8_t* code = nullptr);

// Downlink bits of a vote: d sign bits, plus a d-bit zero mask when some coordinate tied.
inline uint64_t vote_bits(uint64_t d, uint64_t ties) { return ties ? 2 * d : d; }

}  // namespace pyqsgd
