// Identity, Sign and ScaledSign (ALGORITHMS.md §1).
#pragma once
#include "pyqsgd/compressor.hpp"

namespace pyqsgd {

enum Tag : uint16_t {
    kIdentity = 1, kTopK = 2, kRandK = 3, kSign = 4, kScaledSign = 5, kQSGD = 6, kTernGrad = 7,
    kNatural = 8, kChain = 9, kInduced = 10, kTruncate = 11, kNonUniform = 12, kTruncatedQuantizer = 13,
    kThreshold = 14,
    kPython = 15,  // a compressor written in Python (its repr is the fingerprinted name)
    kTernarySign = 16,
    kBlockwise = 17,
};

// x itself as float32: U(0), 32d bits. Also a (dense) chain stage.
class Identity final : public Compressor, public Selector {
   public:
    std::string name() const override { return "Identity()"; }
    uint16_t tag() const override { return kIdentity; }
    bool checks_finite() const override { return true; }  // encode checks while copying
    void encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const override;
    void decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                Workspace& ws) const override;
    Properties properties(uint64_t d) const override;
    bool unbiased() const override { return true; }
    const Selector* as_selector() const override { return this; }
    void select(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws,
                Selection& sel) const override;
    void read_selection(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, Workspace& ws,
                        Selection& sel) const override;
    uint64_t kept(uint64_t d) const override { return d; }
    uint64_t selection_bits(uint64_t) const override { return 0; }
    uint64_t expected_bits(uint64_t d) const override { return 32 * d; }
};

// sign(x) with sign(0) = +1: d bits, no scale; in neither U nor B (its magnitude is lost).
class Sign final : public Compressor {
   public:
    std::string name() const override { return "Sign()"; }
    uint16_t tag() const override { return kSign; }
    uint64_t expected_bits(uint64_t d) const override { return d; }
    void encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const override;
    void decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                Workspace& ws) const override;
    Properties properties(uint64_t d) const override;
    bool unbiased() const override { return false; }
    bool checks_finite() const override { return true; }
};

// sign(x) with sign(0) = 0 (signSGD-FV as its authors run it): two sections, d sign bits
// (bit 1 = negative, 0 at zeros) and a zero mask of d bits (bit 1 = x_j == 0) that is empty
// (0 bits) when no coordinate is zero. Bits: d, or 2d when some x_j == 0. Decoding refuses a
// mask without a set bit and a zero coordinate with its sign bit set (one encoding per vector).
class TernarySign final : public Compressor {
   public:
    std::string name() const override { return "TernarySign()"; }
    uint16_t tag() const override { return kTernarySign; }
    void encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const override;
    void decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                Workspace& ws) const override;
    Properties properties(uint64_t d) const override;
    bool unbiased() const override { return false; }
    bool checks_finite() const override { return true; }
};

// (||x||_1 / d) sign(x): B(||x||_1^2 / (d ||x||^2)) >= B(1/d); d + 32 bits.
class ScaledSign final : public Compressor {
   public:
    std::string name() const override { return "ScaledSign()"; }
    uint16_t tag() const override { return kScaledSign; }
    uint64_t expected_bits(uint64_t d) const override { return d + 32; }
    void encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const override;
    void decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                Workspace& ws) const override;
    Properties properties(uint64_t d) const override;
    bool unbiased() const override { return false; }
    bool checks_finite() const override { return true; }
};

// Packs sign bits (1 = negative) of x[0..d) into w; returns true iff some x[j] is NaN/Inf.
// With `l1`, also computes ||x||_1 exactly as norm1() does, fused into the same pass (the
// block is still in cache when it is summed).
bool pack_signs(const float* x, uint64_t d, uint64_t* w, double* l1 = nullptr);
// out[j] = bit j ? -scale : +scale.
void unpack_signs(const uint64_t* w, uint64_t d, float scale, float* out);

}  // namespace pyqsgd
