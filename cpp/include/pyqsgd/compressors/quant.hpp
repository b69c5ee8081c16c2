// Unbiased quantizers: QSGD (Alistarh et al. 2017), TernGrad (Wen et al. 2017),
// natural compression (Horváth et al. 2019). ALGORITHMS.md §1.
#pragma once
#include "pyqsgd/compressors/basic.hpp"
#include "pyqsgd/parallel.hpp"

namespace pyqsgd {

// Calls code(j, u_j) for every coordinate, where u_j is draw j of `key` as a [0,1) float
// (24 bits) and raw_j its 32-bit value, and packs the returned `width`-bit codes at bit
// offset j * width. Blocks of 64 coordinates fill whole words, so blocks run in parallel.
template <class F>
void write_codes(uint64_t* w, uint64_t d, unsigned width, const Key& key, F&& code) {
    parallel_blocks(int64_t(d), [&](int64_t, int64_t lo, int64_t hi) {
        for (int64_t j = lo; j < hi; j += 4) {
            const Block4 b = philox(key, uint32_t(uint64_t(j) >> 2));
            const int64_t n = std::min<int64_t>(4, hi - j);
            for (int64_t l = 0; l < n; ++l)
                put_bits(w, uint64_t(j + l) * width, code(uint64_t(j + l), b.v[l]), width);
        }
    });
}

// Decodes `width`-bit codes with value(j, code) -> float; value() throws on codes outside
// the codebook. Exceptions are captured by parallel_blocks and rethrown.
template <class F>
void read_codes(const uint64_t* w, uint64_t d, unsigned width, float* out, F&& value) {
    parallel_blocks(int64_t(d), [&](int64_t, int64_t lo, int64_t hi) {
        for (int64_t j = lo; j < hi; ++j) out[j] = value(get_bits(w, uint64_t(j) * width, width));
    });
}

// QSGD(levels=s): ||x|| sign(x_j) l_j / s with l_j stochastic rounding of s|x_j|/||x||.
// U(min(d/s^2, sqrt(d)/s)); 32 + d(1 + ceil(log2(s+1))) bits; draw j decides coordinate j.
class QSGD final : public Compressor {
   public:
    explicit QSGD(uint32_t levels);
    std::string name() const override { return "QSGD(levels=" + std::to_string(s_) + ")"; }
    uint16_t tag() const override { return kQSGD; }
    void encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const override;
    void decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                Workspace& ws) const override;
    Properties properties(uint64_t d) const override;
    bool unbiased() const override { return true; }
    unsigned width() const { return 1 + bit_width_for(uint64_t(s_) + 1); }
    uint64_t expected_bits(uint64_t d) const override { return 32 + d * width(); }

   private:
    uint32_t s_;
};

// TernGrad: s = ||x||_inf, s sign(x_j) b_j with b_j ~ Bernoulli(|x_j|/s).
// U((sqrt(d) - 1)/2); 32 + 2d bits (code 0 zero, 1 plus, 3 minus; 2 is invalid).
class TernGrad final : public Compressor {
   public:
    std::string name() const override { return "TernGrad()"; }
    uint16_t tag() const override { return kTernGrad; }
    uint64_t expected_bits(uint64_t d) const override { return 32 + 2 * d; }
    void encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const override;
    void decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                Workspace& ws) const override;
    Properties properties(uint64_t d) const override;
    bool unbiased() const override { return true; }
};

// Natural compression: stochastic rounding to a neighbouring power of two. U(1/8); 9 bits per
// coordinate (sign + 8-bit exponent; exponent code 0 = zero, 255 invalid).
class Natural final : public Compressor {
   public:
    std::string name() const override { return "Natural()"; }
    uint16_t tag() const override { return kNatural; }
    uint64_t expected_bits(uint64_t d) const override { return 9 * d; }
    void encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const override;
    void decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                Workspace& ws) const override;
    Properties properties(uint64_t d) const override;
    bool unbiased() const override { return true; }
    bool checks_finite() const override { return true; }
};

}  // namespace pyqsgd
