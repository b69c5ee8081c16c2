// Hard threshold HT_tau (DAGC-A, ALGORITHMS.md §4.5): keep the x_j with |x_j| >= tau.
//
// Biased and data-dependent: the number kept is decided by x. No relative contraction holds
// (a vector with every |x_j| < tau compresses to zero), only the absolute bound
// ||C(x) - x||^2 <= d tau^2, so properties() reports omega = delta = NaN (None in Python).
// A chain stage: chain(Threshold, QSGD) quantizes the kept values, indices stay exact.
//
// Wire format: [count: 32 bits] [indices: index_bits(count, d)] [values: 32 count], where
// index_bits is count * ceil(log2 d) or a d-bit bitmap, whichever is smaller. count = 0 sends
// only the count. No randomness; the result depends only on x and tau.
#pragma once
#include "pyqsgd/compressors/sparse.hpp"

namespace pyqsgd {

class Threshold final : public SparseStage {
   public:
    // tau >= 0 and finite (tau = 0 keeps every coordinate).
    explicit Threshold(double tau);
    std::string name() const override;
    uint16_t tag() const override { return kThreshold; }
    Properties properties(uint64_t d) const override;
    bool unbiased() const override { return false; }
    void select(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws,
                Selection& sel) const override;
    void read_selection(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, Workspace& ws,
                        Selection& sel) const override;
    uint64_t kept(uint64_t) const override { return 0; }  // data-dependent
    double tau() const { return tau_; }

   private:
    double tau_;
};

// Sorted indices j with |x_j| >= tau (compared in double), by fixed blocks: identical at any
// thread count.
void select_threshold(const float* x, uint64_t d, double tau, Workspace& ws, std::vector<uint32_t>& idx);

}  // namespace pyqsgd
