// Combinators (ALGORITHMS.md §2): chain(a, b) and induced(C1, C2). Both are compressors.
#pragma once
#include "pyqsgd/compressors/basic.hpp"

namespace pyqsgd {

// b acts on what a keeps: a is a chain stage (sparsifier, truncation, identity); b compresses
// the kept values. Bits add up. Keys: a uses key.child(0), b uses key.child(1).
class Chain final : public Compressor {
   public:
    Chain(CompressorPtr a, CompressorPtr b);
    std::string name() const override { return "chain(" + a_->name() + ", " + b_->name() + ")"; }
    uint16_t tag() const override { return kChain; }
    bool needs_gil() const override { return a_->needs_gil() || b_->needs_gil(); }
    void check(uint64_t d) const override;
    void encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const override;
    void decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                Workspace& ws) const override;
    Properties properties(uint64_t d) const override;
    bool unbiased() const override { return a_->unbiased() && b_->unbiased(); }
    uint64_t expected_bits(uint64_t d) const override {
        const uint64_t kept = sa_->kept(d);
        return add_bits(sa_->selection_bits(d), kept ? b_->expected_bits(kept) : kUnknownBits);
    }

   private:
    CompressorPtr a_, b_;
    const Selector* sa_;
};

// C(x) = C1(x) + C2(x - C1(x)) with C2 unbiased: unbiased, U(omega2 (1 - delta1)) when
// C1 in B(delta1) (Horváth & Richtárik, ICLR 2021). Bits = bits(C1) + bits(C2).
class Induced final : public Compressor {
   public:
    Induced(CompressorPtr c1, CompressorPtr c2);
    std::string name() const override { return "induced(" + c1_->name() + ", " + c2_->name() + ")"; }
    uint16_t tag() const override { return kInduced; }
    bool needs_gil() const override { return c1_->needs_gil() || c2_->needs_gil(); }
    void check(uint64_t d) const override {
        c1_->check(d);
        c2_->check(d);
    }
    void encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const override;
    void decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                Workspace& ws) const override;
    Properties properties(uint64_t d) const override;
    bool unbiased() const override { return true; }
    uint64_t expected_bits(uint64_t d) const override {
        return add_bits(c1_->expected_bits(d), c2_->expected_bits(d));
    }

   private:
    CompressorPtr c1_, c2_;
};

}  // namespace pyqsgd
