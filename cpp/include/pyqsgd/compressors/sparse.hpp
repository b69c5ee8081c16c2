// Sparsifiers: TopK (biased, B(k/d)) and RandK (unbiased, U(d/k - 1)) (ALGORITHMS.md §1).
// Both are chain stages: chain(TopK, QSGD) quantizes the k kept values, indices stay exact.
#pragma once
#include "pyqsgd/compressors/basic.hpp"

namespace pyqsgd {

// k from either an explicit k (> 0) or a ratio in (0, 1]: k = max(1, round(ratio * d)) (halves
// up), or with `floor` k = max(1, floor(ratio * d)) in float64 (GRACE's and EF21's convention).
struct SparsityParam {
    uint64_t k = 0;
    double ratio = 0.0;
    bool floor = false;  // only with a ratio; part of name(), hence of the fingerprint
    uint64_t resolve(uint64_t d) const;
    void check(uint64_t d, const char* who) const;
    std::string text() const;
};

// Index set of size k out of d: k * ceil(log2 d) bits, or a d-bit bitmap when that is smaller.
uint64_t index_bits(uint64_t k, uint64_t d);
void encode_indices(const uint32_t* idx, uint64_t k, uint64_t d, Section& s);
// Validates: exact length, strictly increasing, < d (bitmap: exactly k bits set).
void decode_indices(const Section& s, uint64_t k, uint64_t d, std::vector<uint32_t>& idx, const char* who);

// The k entries of largest |x_j|, ties broken toward the smaller index; writes sorted indices
// (and, with `values`, the kept x_j in the same order).
void select_topk(const float* x, uint64_t d, uint64_t k, Workspace& ws, std::vector<uint32_t>& idx,
                 std::vector<float>* values = nullptr);
// Uniform k-subset of [0, d) by Floyd's algorithm on draws of `key`; sorted.
void sample_subset(const Key& key, uint64_t d, uint64_t k, Workspace& ws, std::vector<uint32_t>& idx);

// A sparsifier used on its own: its selection sections, then the kept values as float32 (no
// values section when nothing is kept). TopK, RandK and Threshold differ only in select().
class SparseStage : public Compressor, public Selector {
   public:
    void encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const final;
    void decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                Workspace& ws) const final;
    const Selector* as_selector() const final { return this; }
};

class TopK final : public SparseStage {
   public:
    explicit TopK(SparsityParam p) : p_(p) {}
    std::string name() const override { return "TopK(" + p_.text() + ")"; }
    uint16_t tag() const override { return kTopK; }
    void check(uint64_t d) const override { p_.check(d, "TopK"); }
    Properties properties(uint64_t d) const override;
    bool unbiased() const override { return false; }
    bool checks_finite() const override { return true; }
    void select(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws,
                Selection& sel) const override;
    void read_selection(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, Workspace& ws,
                        Selection& sel) const override;
    uint64_t kept(uint64_t d) const override { return p_.resolve(d); }
    uint64_t selection_bits(uint64_t d) const override { return index_bits(p_.resolve(d), d); }
    uint64_t expected_bits(uint64_t d) const override { return selection_bits(d) + 32 * p_.resolve(d); }

   private:
    SparsityParam p_;
};

// (d/k) x_j on a uniform k-subset. shared_seed: indices are regenerated from the shared key by
// the receiver and not sent (32k bits); otherwise they are sent (32k + index_bits(k, d)).
class RandK final : public SparseStage {
   public:
    RandK(SparsityParam p, bool shared_seed) : p_(p), shared_seed_(shared_seed) {}
    std::string name() const override {
        return "RandK(" + p_.text() + ", shared_seed=" + (shared_seed_ ? "True" : "False") + ")";
    }
    uint16_t tag() const override { return kRandK; }
    void check(uint64_t d) const override { p_.check(d, "RandK"); }
    Properties properties(uint64_t d) const override;
    bool unbiased() const override { return true; }
    void select(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws,
                Selection& sel) const override;
    void read_selection(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, Workspace& ws,
                        Selection& sel) const override;
    uint64_t kept(uint64_t d) const override { return p_.resolve(d); }
    uint64_t selection_bits(uint64_t d) const override { return shared_seed_ ? 0 : index_bits(p_.resolve(d), d); }
    uint64_t expected_bits(uint64_t d) const override { return selection_bits(d) + 32 * p_.resolve(d); }

   private:
    SparsityParam p_;
    bool shared_seed_;
};

}  // namespace pyqsgd
