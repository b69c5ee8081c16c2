#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "pyqsgd/compressors/tnq.hpp"

namespace pyqsgd {

namespace {

std::string num(double v) {
    char buf[40];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

uint32_t intervals(uint32_t bits) { return (uint32_t(1) << bits) - 1; }

void check_bits(uint32_t bits, const char* who) {
    if (bits < 1 || bits > 16)
        fail(std::string(who) + ": bits must be in [1, 16], got bits=" + std::to_string(bits));
}

void write_f32(Message& msg, float v) { msg.add(32).words[0] = float_bits(v); }

// A non-negative finite float32 scale from its own 32-bit section.
float read_f32(SectionCursor& cur, const char* who, const char* what) {
    const Section& s = cur.next(who);
    expect_bits(s, 32, who);
    const float v = bits_float(uint32_t(s.words[0]));
    if (!std::isfinite(v) || v < 0.0f)
        fail(std::string(who) + ": " + what + " in message is negative or not finite (malformed message)");
    return v;
}

void require_finite_levels(const std::vector<float>& lv, const char* who, bool decoding) {
    if (std::isfinite(lv.back())) return;
    if (decoding) fail(std::string(who) + ": scale in message gives levels beyond float32 (malformed message)");
    fail_overflow(std::string(who) + ": the quantization range overflows float32; rescale x");
}

}  // namespace

// ---- closed forms ---------------------------------------------------------------------------

double lambert_w0(double x) {
    if (!(x >= 0.0) || !std::isfinite(x)) fail("lambert_w0: x must be finite and >= 0");
    if (x == 0.0) return 0.0;
    // Start: log1p(x) up to x = e (where W <= 1), the two-term asymptotic series beyond.
    double w = std::log1p(x);
    if (x > 2.718281828459045) {
        const double l1 = std::log(x), l2 = std::log(l1);
        w = l1 - l2 + l2 / l1;
    }
    for (int it = 0; it < 50; ++it) {  // Halley: cubic convergence, 3-5 steps in practice
        const double ew = std::exp(w), f = w * ew - x;
        const double step = f / (ew * (w + 1.0) - (w + 2.0) * f / (2.0 * w + 2.0));
        w -= step;
        if (std::fabs(step) <= 1e-15 * (1.0 + std::fabs(w))) break;
    }
    return w;
}

double laplace_threshold(uint32_t s, double gamma) { return 3.0 * gamma * std::log1p(double(s) / kKStar); }

double uniform_threshold(uint32_t s, double gamma) { return gamma * lambert_w0(double(s) * double(s)); }

void laplace_levels(uint32_t s, double alpha, double gamma, std::vector<float>& lv) {
    lv.assign(size_t(s) + 1, 0.0f);
    if (alpha == 0.0) return;  // all +0 (a zero vector decodes to +0, not -0)
    const float a32 = float(alpha);
    lv[0] = -a32;
    lv[s] = a32;
    if (s < 2) return;
    // A = 1 - exp(-alpha/(3 gamma)); gamma = 0 is the limit of all mass at 0 (interior levels 0).
    const double A = gamma > 0.0 ? -std::expm1(-alpha / (3.0 * gamma)) : 1.0;
    for (uint32_t j = s / 2 + 1; j < s; ++j) {
        const double v = double(2 * j - s) / double(s);  // |2u - 1| with u = j/s
        const double l = gamma > 0.0 ? -3.0 * gamma * std::log1p(-v * A) : 0.0;
        lv[j] = std::min(float(l), a32);
        lv[s - j] = -lv[j];
    }
}

void uniform_levels(uint32_t s, double alpha, std::vector<float>& lv) {
    lv.assign(size_t(s) + 1, 0.0f);
    if (alpha == 0.0) return;
    for (uint32_t j = s / 2 + (s % 2); j <= s; ++j) {
        const float l = j == s ? float(alpha) : float(alpha * double(2 * j - s) / double(s));
        lv[j] = l;
        lv[s - j] = -l;
    }
}

void scaled_levels(const std::vector<double>& table, double alpha, std::vector<float>& lv) {
    lv.assign(table.size(), 0.0f);
    if (alpha == 0.0) return;
    for (size_t j = 0; j < table.size(); ++j) lv[j] = float(alpha * table[j]);
}

double estimate_gamma(const float* x, uint64_t d, GammaRule rule, Workspace& ws) {
    if (rule == GammaRule::kMean) return norm1(x, d) / double(d);
    std::vector<float>& a = ws.f(1);
    a.resize(d);
    for (uint64_t j = 0; j < d; ++j) a[j] = std::fabs(x[j]);
    const uint64_t k = d / 2;
    std::nth_element(a.begin(), a.begin() + int64_t(k), a.end());
    double med = a[k];
    if (d % 2 == 0) med = 0.5 * (med + double(*std::max_element(a.begin(), a.begin() + int64_t(k))));
    return med / std::log(2.0);  // Laplace: median|x| = gamma ln 2
}

std::string gamma_text(GammaRule rule) { return rule == GammaRule::kMean ? "'mean'" : "'median'"; }

void round_to_levels(const float* x, uint64_t d, const std::vector<float>& lv, unsigned width, const Key& key,
                     uint64_t* w) {
    const float* L = lv.data();
    const size_t n = lv.size();
    const float lo = L[0], hi = L[n - 1];
    write_codes(w, d, width, key, [&](uint64_t j, uint32_t raw) -> uint64_t {
        const float h = std::min(std::max(x[j], lo), hi);
        // i = the largest index in [0, n-2] with L[i] <= h.
        const size_t i = size_t(std::upper_bound(L + 1, L + n - 1, h) - L) - 1;
        const float a = L[i], b = L[i + 1];
        if (!(b > a)) return i;  // empty interval: h == a
        const double p = (double(h) - double(a)) / (double(b) - double(a));
        return i + uint64_t(double(to_unit_float(raw)) < p);
    });
}

void decode_levels(const uint64_t* w, uint64_t d, const std::vector<float>& lv, unsigned width, float* out,
                   const char* who) {
    const float* L = lv.data();
    const uint64_t n = lv.size();
    read_codes(w, d, width, out, who, [&](uint64_t code, uint32_t& ok) -> float {
        const bool valid = code < n;
        ok &= uint32_t(valid);
        return valid ? L[code] : 0.0f;
    });
}

// ---- Truncate -------------------------------------------------------------------------------

Truncate::Truncate(Rule rule, double threshold, uint32_t bits, GammaRule gamma)
    : rule_(rule), alpha_(threshold), bits_(bits), gamma_(gamma) {
    if (rule == Rule::kFixed) {
        if (!(threshold > 0.0) || !std::isfinite(threshold) || threshold > 3.4e38)
            fail("Truncate: threshold must be a finite float32 > 0, got threshold=" + num(threshold));
    } else {
        check_bits(bits, "Truncate");
    }
}

std::string Truncate::name() const {
    if (rule_ == Rule::kFixed) return "Truncate(threshold=" + num(alpha_) + ")";
    const char* r = rule_ == Rule::kLaplace ? "'laplace'" : "'laplace_uniform'";
    return std::string("Truncate(threshold=") + r + ", bits=" + std::to_string(bits_) +
           ", gamma=" + gamma_text(gamma_) + ")";
}

float Truncate::threshold_for(const float* x, uint64_t d, Workspace& ws) const {
    if (rule_ == Rule::kFixed) return float(alpha_);
    const double g = double(float(estimate_gamma(x, d, gamma_, ws)));
    const uint32_t s = intervals(bits_);
    const float a = float(rule_ == Rule::kLaplace ? laplace_threshold(s, g) : uniform_threshold(s, g));
    if (!std::isfinite(a)) fail_overflow("Truncate: the threshold overflows float32; rescale x");
    return a;
}

void Truncate::select(const float* x, uint64_t d, const Key&, Message&, Workspace& ws, Selection& sel) const {
    const float a = threshold_for(x, d, ws);
    sel.dense = true;
    sel.indices.clear();
    sel.values.resize(d);
    float* h = sel.values.data();
    parallel_blocks(int64_t(d), [&](int64_t, int64_t lo, int64_t hi) {
        for (int64_t j = lo; j < hi; ++j) h[j] = std::min(std::max(x[j], -a), a);
    });
}

void Truncate::read_selection(const Message&, SectionCursor&, uint64_t, const Key&, Workspace&,
                              Selection& sel) const {
    sel.dense = true;
    sel.indices.clear();
}

void Truncate::encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const {
    select(x, d, key, msg, ws, ws.sel);
    Section& s = msg.add(32 * d);
    std::memcpy(s.words.data(), ws.sel.values.data(), d * sizeof(float));
}

void Truncate::decode(const Message&, SectionCursor& cur, uint64_t d, const Key&, float* out, Workspace&) const {
    const Section& s = cur.next("Truncate");
    expect_bits(s, 32 * d, "Truncate");
    if (copy_checked(out, reinterpret_cast<const float*>(s.words.data()), d))
        fail("Truncate: message holds NaN or Inf values (malformed message)");
}

Properties Truncate::properties(uint64_t d) const {
    Properties p;  // biased; ||x - h||^2 <= ||x||^2 - ||h||^2 since 0 <= |h_j| <= |x_j|, same sign.
    if (rule_ != Rule::kFixed && gamma_ == GammaRule::kMean) {
        // alpha = c mean|x| >= c ||x||_2 / d; if anything is clipped, ||h||^2 >= alpha^2, else h = x.
        // So delta = min(1, c^2/d^2); the factor absorbs float32 rounding of gamma-hat and alpha.
        const uint32_t s = intervals(bits_);
        const double c = rule_ == Rule::kLaplace ? laplace_threshold(s, 1.0) : uniform_threshold(s, 1.0);
        p.delta = std::min(1.0, c * c / (double(d) * double(d))) * (1.0 - 1e-6);
    }
    return p;
}

// ---- NonUniformQuantizer --------------------------------------------------------------------

NonUniformQuantizer::NonUniformQuantizer(uint32_t bits, Density density, std::vector<double> table, GammaRule gamma)
    : bits_(bits), density_(density), table_(std::move(table)), gamma_(gamma) {
    check_bits(bits, "NonUniformQuantizer");
    if (density_ != Density::kTable) return;
    const size_t n = table_.size();
    if (n < 2 || n > (size_t(1) << bits))
        fail("NonUniformQuantizer: levels must have between 2 and 2**bits entries, got " + std::to_string(n));
    if (table_.front() != -1.0 || table_.back() != 1.0)
        fail("NonUniformQuantizer: levels must start at -1 and end at 1 (they are scaled by max|x|)");
    for (size_t j = 0; j < n; ++j) {
        if (!std::isfinite(table_[j])) fail("NonUniformQuantizer: levels must be finite");
        if (j > 0 && !(table_[j] > table_[j - 1])) fail("NonUniformQuantizer: levels must be strictly increasing");
        if (table_[j] != -table_[n - 1 - j]) fail("NonUniformQuantizer: levels must be symmetric (l_j = -l_{n-1-j})");
    }
}

std::string NonUniformQuantizer::name() const {
    std::string out = "NonUniformQuantizer(bits=" + std::to_string(bits_);
    if (density_ == Density::kTable) {
        out += ", levels=[";
        for (size_t j = 0; j < table_.size(); ++j) out += (j ? ", " : "") + num(table_[j]);
        return out + "])";
    }
    if (density_ == Density::kUniform) return out + ", density='uniform')";
    return out + ", density='laplace', gamma=" + gamma_text(gamma_) + ")";
}

void NonUniformQuantizer::levels(float alpha, float gamma, std::vector<float>& lv) const {
    const uint32_t s = intervals(bits_);
    if (density_ == Density::kTable) scaled_levels(table_, alpha, lv);
    else if (density_ == Density::kUniform) uniform_levels(s, alpha, lv);
    else laplace_levels(s, alpha, gamma, lv);
}

void NonUniformQuantizer::encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const {
    const float alpha = float(norm_inf(x, d));  // exact: a float32 of x
    write_f32(msg, alpha);
    float gamma = 0.0f;
    if (density_ == Density::kLaplace) {
        gamma = float(estimate_gamma(x, d, gamma_, ws));
        write_f32(msg, gamma);
    }
    std::vector<float>& lv = ws.f(0);
    levels(alpha, gamma, lv);
    require_finite_levels(lv, "NonUniformQuantizer", false);
    uint64_t* w = msg.add(d * bits_).words.data();
    if (alpha == 0.0f) return;  // every level is 0: codes 0
    round_to_levels(x, d, lv, bits_, key, w);
}

void NonUniformQuantizer::read_scales(SectionCursor& cur, float& alpha, float& gamma) const {
    alpha = read_f32(cur, "NonUniformQuantizer", "max|x|");
    gamma = density_ == Density::kLaplace ? read_f32(cur, "NonUniformQuantizer", "gamma") : 0.0f;
}

void NonUniformQuantizer::decode(const Message&, SectionCursor& cur, uint64_t d, const Key&, float* out,
                                 Workspace& ws) const {
    float alpha, gamma;
    read_scales(cur, alpha, gamma);
    std::vector<float>& lv = ws.f(0);
    levels(alpha, gamma, lv);
    require_finite_levels(lv, "NonUniformQuantizer", true);
    const Section& s = cur.next("NonUniformQuantizer");
    expect_bits(s, d * bits_, "NonUniformQuantizer");
    decode_levels(s.words.data(), d, lv, bits_, out, "NonUniformQuantizer");
}

std::vector<float> NonUniformQuantizer::codebook(const Message& msg) const {
    if (msg.tag != tag() || msg.fingerprint != fingerprint())
        fail(name() + ".codebook: the message was not produced by this compressor");
    SectionCursor cur(msg);
    float alpha, gamma;
    read_scales(cur, alpha, gamma);
    std::vector<float> lv;
    levels(alpha, gamma, lv);
    return lv;
}

Properties NonUniformQuantizer::properties(uint64_t d) const {
    // Stochastic rounding in a gap of width g*alpha has variance <= (g alpha)^2 / 4, and
    // alpha = ||x||_inf <= ||x||_2, so omega = d g^2 / 4 with g the largest normalised gap.
    // Laplace levels: the positive half is convex in u, so the largest gap is the outer one, <= alpha
    // (reached as max|x| / gamma-hat grows); with s = 1 the only gap is 2 alpha.
    Properties p;
    p.unbiased = true;
    const uint32_t s = intervals(bits_);
    double g = 0.0;
    if (density_ == Density::kTable) {
        for (size_t j = 1; j < table_.size(); ++j) g = std::max(g, table_[j] - table_[j - 1]);
    } else if (density_ == Density::kUniform) {
        g = 2.0 / double(s);
    } else {
        g = s == 1 ? 2.0 : 1.0;
    }
    p.omega = double(d) * g * g / 4.0;
    return p;
}

// ---- TruncatedQuantizer ---------------------------------------------------------------------

TruncatedQuantizer::TruncatedQuantizer(uint32_t bits, Shape shape, GammaRule gamma)
    : bits_(bits), shape_(shape), gamma_(gamma) {
    check_bits(bits, shape == Shape::kLaplace ? "TruncatedQuantizer" : "TruncatedUniformQuantizer");
}

std::string TruncatedQuantizer::name() const {
    return std::string(shape_ == Shape::kLaplace ? "TruncatedQuantizer" : "TruncatedUniformQuantizer") +
           "(bits=" + std::to_string(bits_) + ", gamma=" + gamma_text(gamma_) + ")";
}

void TruncatedQuantizer::levels(float gamma, std::vector<float>& lv) const {
    const uint32_t s = intervals(bits_);
    const double g = double(gamma);
    if (shape_ == Shape::kLaplace) laplace_levels(s, laplace_threshold(s, g), g, lv);
    else uniform_levels(s, uniform_threshold(s, g), lv);
}

void TruncatedQuantizer::encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const {
    const float gamma = float(estimate_gamma(x, d, gamma_, ws));
    if (!std::isfinite(gamma)) fail_overflow(name() + ": gamma-hat overflows float32; rescale x");
    write_f32(msg, gamma);
    std::vector<float>& lv = ws.f(0);
    levels(gamma, lv);
    require_finite_levels(lv, "TruncatedQuantizer", false);
    uint64_t* w = msg.add(d * bits_).words.data();
    if (gamma == 0.0f) return;  // every level is 0: codes 0
    round_to_levels(x, d, lv, bits_, key, w);  // clips to [-alpha, alpha] = [l_0, l_s]
}

float TruncatedQuantizer::read_gamma(SectionCursor& cur) const {
    return read_f32(cur, "TruncatedQuantizer", "gamma");
}

void TruncatedQuantizer::decode(const Message&, SectionCursor& cur, uint64_t d, const Key&, float* out,
                                Workspace& ws) const {
    const float gamma = read_gamma(cur);
    std::vector<float>& lv = ws.f(0);
    levels(gamma, lv);
    require_finite_levels(lv, "TruncatedQuantizer", true);
    const Section& s = cur.next("TruncatedQuantizer");
    expect_bits(s, d * bits_, "TruncatedQuantizer");
    decode_levels(s.words.data(), d, lv, bits_, out, "TruncatedQuantizer");
}

std::vector<float> TruncatedQuantizer::codebook(const Message& msg) const {
    if (msg.tag != tag() || msg.fingerprint != fingerprint())
        fail(name() + ".codebook: the message was not produced by this compressor");
    SectionCursor cur(msg);
    std::vector<float> lv;
    levels(read_gamma(cur), lv);
    return lv;
}

}  // namespace pyqsgd
