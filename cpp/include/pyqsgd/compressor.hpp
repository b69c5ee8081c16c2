// The compressor interface.
//
// A compressor is a stateless, const, thread-safe parameter record: compress(x, key) → Message,
// decompress(Message) → vector, properties(d) → {unbiased, omega, delta}. Scratch memory lives
// in a caller-owned Workspace so that the simulator's per-round loop allocates nothing once
// buffers have reached their size.
#pragma once
#include <atomic>
#include <cmath>
#include <deque>
#include <cstdint>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "pyqsgd/message.hpp"
#include "pyqsgd/rng.hpp"

namespace pyqsgd {

// Theory constants (ALGORITHMS.md): unbiased U(omega) or contractive B(delta); NaN = none.
struct Properties {
    bool unbiased = false;
    double omega = std::numeric_limits<double>::quiet_NaN();
    double delta = std::numeric_limits<double>::quiet_NaN();
};

// The sub-vector a first stage of chain(a, b) keeps; b compresses `values`.
struct Selection {
    bool dense = true;              // values[j] belongs to coordinate j (all d kept)
    std::vector<uint32_t> indices;  // sorted kept coordinates when !dense
    std::vector<float> values;      // what the next stage compresses
};

class Selector;

// Reusable scratch buffers, one tree per (thread or worker); children serve sub-compressors.
class Workspace {
   public:
    std::vector<float>& f(size_t i) { return grow(f_, i); }
    std::vector<uint32_t>& u(size_t i) { return grow(u_, i); }
    std::vector<double>& f64(size_t i) { return grow(d_, i); }
    std::vector<int64_t>& i64(size_t i) { return grow(i_, i); }
    Selection sel;  // a stage's selection, kept between its encode and the next stage
    Workspace& child(size_t i) {
        while (children_.size() <= i) children_.push_back(std::make_unique<Workspace>());
        return *children_[i];
    }

   private:
    template <class V>
    static typename V::value_type& grow(V& v, size_t i) {
        if (v.size() <= i) v.resize(i + 1);
        return v[i];
    }
    // deques: growing them never moves existing buffers, so references stay valid.
    std::deque<std::vector<float>> f_;
    std::deque<std::vector<uint32_t>> u_;
    std::deque<std::vector<double>> d_;
    std::deque<std::vector<int64_t>> i_;
    std::vector<std::unique_ptr<Workspace>> children_;
};


class Compressor {
   public:
    virtual ~Compressor() = default;

    // Canonical text of the parameters, e.g. "TopK(k=5)"; its hash is the message fingerprint.
    virtual std::string name() const = 0;
    virtual uint16_t tag() const = 0;
    // Throws std::invalid_argument naming the parameter when it does not fit dimension d.
    virtual void check(uint64_t d) const {}
    // Appends this compressor's sections for x[0..d).
    virtual void encode(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const = 0;
    // Consumes this compressor's sections and writes out[0..d).
    // `key` is the same key encode received (shared by both ends; RandK regenerates indices from it).
    virtual void decode(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, float* out,
                        Workspace& ws) const = 0;
    virtual Properties properties(uint64_t d) const = 0;
    // Unbiasedness does not depend on d; induced(C1, C2) requires it of C2.
    virtual bool unbiased() const = 0;
    // Non-null for stages that can start a chain (sparsifiers, truncation, identity).
    virtual const Selector* as_selector() const { return nullptr; }
    // True when the compressor's encode rejects non-finite input itself (saves a pass).
    virtual bool checks_finite() const { return false; }
    // True when encode/decode call back into the Python interpreter (a compressor written in
    // Python, or a combinator with such a stage). Callers then run it from one thread at a
    // time: the callback takes the GIL, and OpenMP threads queueing on the GIL gain nothing.
    virtual bool needs_gil() const { return false; }
    // Exact payload bits of any message for dimension d, or kUnknownBits when data-dependent.
    // decompress() compares it with the message before the caller allocates d floats, so an
    // adversarial header (huge d, tiny payload) is rejected without allocating.
    virtual uint64_t expected_bits(uint64_t d) const { return kUnknownBits; }
    static constexpr uint64_t kUnknownBits = ~uint64_t(0);

    // Validates the header of `msg` against this compressor (tag, fingerprint, d, total bits)
    // without decoding: cheap, allocation-free; throws std::invalid_argument.
    void check_message(const Message& msg) const;

    // FNV-1a of name(), computed on first use and cached: compressors are immutable, and
    // building the parameter text costs microseconds on every message otherwise. Any thread may
    // compute it; all store the same value.
    uint32_t fingerprint() const {
        uint64_t v = fp_cache_.load(std::memory_order_relaxed);
        if (v == 0) {
            v = (uint64_t(1) << 32) | compute_fingerprint();
            fp_cache_.store(v, std::memory_order_relaxed);
        }
        return uint32_t(v);
    }
    // Header + check + encode. Validates d, finiteness, parameters before any parallel work.
    void compress(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws) const;
    // Checks tag, fingerprint and d; decodes; requires every section to be consumed.
    void decompress(const Message& msg, float* out, Workspace& ws) const;

   private:
    uint32_t compute_fingerprint() const;
    mutable std::atomic<uint64_t> fp_cache_{0};  // bit 32 set = cached
};

using CompressorPtr = std::shared_ptr<const Compressor>;

class Selector {
   public:
    virtual ~Selector() = default;
    // Writes the selector's own sections (indices, thresholds) and fills `sel`.
    virtual void select(const float* x, uint64_t d, const Key& key, Message& msg, Workspace& ws,
                        Selection& sel) const = 0;
    // Reads the selector's sections back into `sel.indices` / `sel.dense` (values untouched).
    virtual void read_selection(const Message& msg, SectionCursor& cur, uint64_t d, const Key& key, Workspace& ws,
                                Selection& sel) const = 0;
    // Number of values a selection of a d-vector keeps, or 0 when data-dependent.
    virtual uint64_t kept(uint64_t d) const = 0;
    // Bits of the selector's own sections, or Compressor::kUnknownBits when data-dependent.
    virtual uint64_t selection_bits(uint64_t d) const { return Compressor::kUnknownBits; }
};

// Throws std::invalid_argument(prefix + message): used for every user-facing check.
[[noreturn]] void fail(const std::string& what);
// A value does not fit float32 on the wire: the caller should rescale x (a ValueError in Python).
// Inside a simulation it means the run diverged, and the simulator stops cleanly on it.
struct Float32Overflow : std::invalid_argument {
    using std::invalid_argument::invalid_argument;
};
[[noreturn]] void fail_overflow(const std::string& what);
// Throws unless every x[j] is finite (fixed blocks, parallel, deterministic message).
void check_finite(const float* x, uint64_t d, const char* who);
// ||x||_2 in double, summed in fixed blocks (identical at any thread count).
double norm2(const float* x, uint64_t d);
double norm1(const float* x, uint64_t d);
// The per-block partial sums behind norm1 / norm2 (8 interleaved double lanes, see
// compressor.cpp): kernels that fuse a norm into another pass call these per block of kBlock.
double block_sum_abs(const float* x, int64_t lo, int64_t hi);
double block_sum_sq(const float* x, int64_t lo, int64_t hi);
double norm_inf(const float* x, uint64_t d);

// Scatters a selection's values back into a zeroed d-vector (or copies when dense).
void place_selection(const Selection& sel, const float* values, uint64_t d, float* out);

// Checks that a section has exactly `expected` bits (the decoder's first line of defence).
void expect_bits(const Section& s, uint64_t expected, const char* who);
// Throws unless out[0..n) is finite: decoders of raw float32 payloads (values, sums) call it,
// so a corrupted message never decodes to NaN/Inf.
void check_decoded_finite(const float* out, uint64_t n, const char* who);
// dst[0..n) = src[0..n) in one parallel pass; returns true iff some value is NaN or Inf.
// Large copies use streaming stores when dst is 16-byte aligned (outputs beyond cache).
bool copy_checked(float* dst, const float* src, uint64_t n);
// a + b for bit counts, kUnknownBits when either is unknown.
inline uint64_t add_bits(uint64_t a, uint64_t b) {
    return (a == Compressor::kUnknownBits || b == Compressor::kUnknownBits) ? Compressor::kUnknownBits : a + b;
}

}  // namespace pyqsgd
