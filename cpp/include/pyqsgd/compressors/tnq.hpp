// Truncated non-uniform quantization, TNQSGD (Yan et al., arXiv 2402.01160; ALGORITHMS.md §4.4),
// its two stages (Truncate, NonUniformQuantizer) and the truncated uniform baseline.
//
// Model: coordinates ~ Laplace(0, gamma). With s = 2^b - 1 intervals and k* = 3 sqrt(6)/2:
//   alpha* = 3 gamma ln(1 + s/k*)                    (optimal truncation threshold)
//   levels = quantiles of exp(-|g|/(3 gamma)) on [-alpha, alpha]
//   alpha_U = gamma W(s^2)                           (optimum for uniform levels; W = Lambert W)
// Level tables are computed in double from values both ends know (bits and the float32 scales
// carried by the message) and rounded once to float32, so encoder and decoder agree bit for bit.
#pragma once
#include "pyqsgd/compressors/quant.hpp"

namespace pyqsgd {

constexpr double kKStar = 3.6742346141747673;  // 3 sqrt(6) / 2

// Principal branch W0 of the Lambert W function for x >= 0 (Halley steps from an asymptotic
// start; converges to double precision in a few steps).
double lambert_w0(double x);
// alpha* = 3 gamma ln(1 + s/k*).
double laplace_threshold(uint32_t s, double gamma);
// alpha_U = gamma W(s^2).
double uniform_threshold(uint32_t s, double gamma);

// l_0..l_s: quantiles of exp(-|g|/(3 gamma)) on [-alpha, alpha]; exactly symmetric, non-decreasing,
// ends exactly -alpha32 / alpha32 where alpha32 = float(alpha). gamma = 0 puts every interior level at 0.
void laplace_levels(uint32_t s, double alpha, double gamma, std::vector<float>& lv);
// l_j = alpha (2j - s)/s, exactly symmetric.
void uniform_levels(uint32_t s, double alpha, std::vector<float>& lv);
// alpha * table[j] (table normalised to [-1, 1]).
void scaled_levels(const std::vector<double>& table, double alpha, std::vector<float>& lv);

// How the Laplace scale is estimated: mean|x| (the MLE) or median|x| / ln 2.
enum class GammaRule : uint8_t { kMean = 0, kMedian = 1 };
double estimate_gamma(const float* x, uint64_t d, GammaRule rule, Workspace& ws);
std::string gamma_text(GammaRule rule);

// Stochastic rounding of clip(x_j, l_0, l_n) to its neighbouring levels (unbiased w.r.t. the clipped
// value); packs `width`-bit level indices. Draw j of `key` decides coordinate j.
void round_to_levels(const float* x, uint64_t d, const std::vector<float>& lv, unsigned width, const Key& key,
                     uint64_t* w);
// out_j = lv[code_j]; a code >= lv.size() is a malformed message.
void decode_levels(const uint64_t* w, uint64_t d, const std::vector<float>& lv, unsigned width, float* out,
                   const char* who);

// ---- Truncate --------------------------------------------------------------------------------

// h_j = clip(x_j, -alpha, alpha). alpha is fixed, or a rule applied to gamma-hat of x:
// kLaplace: alpha* (TNQ optimum for s = 2^bits - 1), kLaplaceUniform: alpha_U.
// As a chain stage it writes nothing (the next stage carries its own scale) and selects all of h;
// alone it sends h as float32 (32 d bits).
class Truncate final : public Compressor, public Selector {
   public:
    enum class Rule : uint8_t { kFixed = 0, kLaplace = 1, kLaplaceUniform = 2 };
    Truncate(Rule rule, double threshold, uint32_t bits, GammaRule gamma);
    std::string name() const override;
    uint16_t tag() const override { return kTruncate; }
    void encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const override;
    void decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                Workspace& ws) const override;
    Properties properties(uint64_t d) const override;
    bool unbiased() const override { return false; }
    const Selector* as_selector() const override { return this; }
    void select(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws,
                Selection& sel) const override;
    void read_selection(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, Workspace& ws,
                        Selection& sel) const override;
    uint64_t kept(uint64_t d) const override { return d; }
    // The threshold used for x (float32, as applied).
    float threshold_for(const float* x, uint64_t d, Workspace& ws) const;

   private:
    Rule rule_;
    double alpha_;
    uint32_t bits_;
    GammaRule gamma_;
};

// ---- NonUniformQuantizer --------------------------------------------------------------------

// Unbiased stochastic rounding to 2^bits (or fewer) levels spanning [-max|x|, max|x|]:
// kTable: alpha table (fixed, normalised, known to both ends); wire: max|x| (f32) + d b bits.
// kUniform: uniform levels;                                     wire: max|x| + d b bits.
// kLaplace: quantiles of exp(-|g|/(3 gamma-hat)) on [-max|x|, max|x|]; wire: max|x| + gamma-hat + d b.
class NonUniformQuantizer final : public Compressor {
   public:
    enum class Density : uint8_t { kTable = 0, kUniform = 1, kLaplace = 2 };
    NonUniformQuantizer(uint32_t bits, Density density, std::vector<double> table, GammaRule gamma);
    std::string name() const override;
    uint16_t tag() const override { return kNonUniform; }
    void encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const override;
    void decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                Workspace& ws) const override;
    Properties properties(uint64_t d) const override;
    bool unbiased() const override { return true; }
    // The level table the receiver rebuilds for `msg`.
    std::vector<float> codebook(const Message& msg) const;

   private:
    void levels(float alpha, float gamma, std::vector<float>& lv) const;
    void read_scales(SectionCursor& cur, float& alpha, float& gamma) const;
    uint32_t bits_;
    Density density_;
    std::vector<double> table_;
    GammaRule gamma_;
};

// ---- TruncatedQuantizer (TNQSGD) and the truncated uniform baseline -------------------------

// gamma-hat from x (sent as float32); alpha and the levels from the closed forms of gamma-hat and b;
// clip to [-alpha, alpha]; unbiased stochastic rounding. Wire: 32 + d b bits exactly.
// kLaplace = TNQSGD; kUniform = TruncatedUniformQuantizer (alpha_U, uniform levels).
class TruncatedQuantizer final : public Compressor {
   public:
    enum class Shape : uint8_t { kLaplace = 0, kUniform = 1 };
    TruncatedQuantizer(uint32_t bits, Shape shape, GammaRule gamma);
    std::string name() const override;
    uint16_t tag() const override { return kTruncatedQuantizer; }
    void encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const override;
    void decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                Workspace& ws) const override;
    Properties properties(uint64_t d) const override { return Properties{}; }
    bool unbiased() const override { return false; }
    std::vector<float> codebook(const Message& msg) const;
    // Level table for a given (float32) gamma-hat, exactly as both ends build it.
    void levels(float gamma, std::vector<float>& lv) const;

   private:
    float read_gamma(SectionCursor& cur) const;
    uint32_t bits_;
    Shape shape_;
    GammaRule gamma_;
};

}  // namespace pyqsgd
