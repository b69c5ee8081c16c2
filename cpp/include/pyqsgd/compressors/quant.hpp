// Unbiased quantizers: QSGD (Alistarh et al. 2017), TernGrad (Wen et al. 2017),
// natural compression (Horváth et al. 2019). ALGORITHMS.md §1.
#pragma once
#include "pyqsgd/compressors/basic.hpp"
#include "pyqsgd/parallel.hpp"

#include <algorithm>
#include <cstdint>
#include <string>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

namespace pyqsgd {

// Packs codes LSB-first: code j at bit offset j * width. Blocks of kBlock coordinates start on
// word boundaries (kBlock * width is a multiple of 64), so blocks are written by different
// threads without sharing a word. put() takes any bit count in [1, 64]: callers pack
// floor(64 / width) codes per call, which is what makes packing cheap.
class CodePacker {
   public:
    CodePacker(uint64_t* w, int64_t first, unsigned width) : out_(w + uint64_t(first) * width / 64) {}
    void put(uint64_t c, unsigned nbits) {  // c < 2^nbits
        acc_ |= c << nb_;
        nb_ += nbits;
        if (nb_ >= 64) {
            *out_++ = acc_;
            nb_ -= 64;
            acc_ = nb_ ? c >> (nbits - nb_) : 0;
        }
    }
    void flush() {
        if (nb_) *out_ = acc_;
    }

   private:
    uint64_t* out_;
    uint64_t acc_ = 0;
    unsigned nb_ = 0;
};

// The matching sequential reader (any bit count in [1, 64] per call); it never reads a word
// past the one holding the last bit requested.
class CodeUnpacker {
   public:
    CodeUnpacker(const uint64_t* w, int64_t first, unsigned width) : in_(w + uint64_t(first) * width / 64) {}
    uint64_t get(unsigned nbits) {
        const uint64_t mask = nbits == 64 ? ~uint64_t(0) : (uint64_t(1) << nbits) - 1;
        if (nb_ >= nbits) {
            const uint64_t c = cur_ & mask;
            cur_ = nbits == 64 ? 0 : cur_ >> nbits;
            nb_ -= nbits;
            return c;
        }
        const uint64_t next = *in_++;
        const uint64_t c = (cur_ | (next << nb_)) & mask;  // nb_ < nbits <= 64
        const unsigned used = nbits - nb_;                   // bits taken from `next`, in [1, 64]
        cur_ = used == 64 ? 0 : next >> used;
        nb_ = 64 - used;
        return c;
    }

   private:
    const uint64_t* in_;
    uint64_t cur_ = 0;
    unsigned nb_ = 0;
};

// Codes per 64-bit chunk for a code width (1..32).
inline unsigned codes_per_chunk(unsigned width) { return 64 / width; }

// Calls batch(j, n, raw, codes) for consecutive chunks of n <= 64 coordinates starting at j:
// raw[i] is the 32-bit draw j + i of `key`, and batch writes the `width`-bit codes of those
// coordinates to codes[0..n). Draws come 64 at a time from philox_fill (AVX2 when available);
// codes are computed for a chunk first, then packed, so the arithmetic has no loop-carried
// dependency and can be vectorised.
template <class F>
void write_codes_batch(uint64_t* w, uint64_t d, unsigned width, const Key& key, F&& batch) {
    parallel_blocks(int64_t(d), [&](int64_t, int64_t lo, int64_t hi) {
        CodePacker pack(w, lo, width);
        alignas(32) uint32_t raw[64];
        alignas(32) uint32_t codes[64];
        for (int64_t j = lo; j < hi; j += 64) {
            philox_fill(key, uint32_t(uint64_t(j) >> 2), 16, raw);  // blocks start at multiples of 64
            const int n = int(std::min<int64_t>(64, hi - j));
            batch(uint64_t(j), n, raw, codes);
            const int g = int(codes_per_chunk(width));
            int l = 0;
            for (; l + g <= n; l += g) {
                uint64_t chunk = 0;
                for (int i = 0; i < g; ++i) chunk |= uint64_t(codes[l + i]) << (unsigned(i) * width);
                pack.put(chunk, unsigned(g) * width);
            }
            for (; l < n; ++l) pack.put(codes[l], width);
        }
        pack.flush();
    });
}

// Scalar form: code(j, raw_j) -> code (at most 32 bits) for every coordinate.
template <class F>
void write_codes(uint64_t* w, uint64_t d, unsigned width, const Key& key, F&& code) {
    write_codes_batch(w, d, width, key, [&](uint64_t j, int n, const uint32_t* raw, uint32_t* codes) {
        for (int l = 0; l < n; ++l) codes[l] = uint32_t(code(j + uint64_t(l), raw[l]));
    });
}

// Decodes `width`-bit codes: out[j] = table[code]; codes flagged invalid make the whole call
// throw "<who>: code outside the codebook" (after the parallel join, never from inside it).
// `table` and `valid` have 2^width entries (callers use it for width <= 12).
inline void read_codes_lut(const uint64_t* w, uint64_t d, unsigned width, const float* table,
                           const uint32_t* valid, float* out, const char* who) {
    const double bad = block_sum(int64_t(d), [&](int64_t lo, int64_t hi) {
        CodeUnpacker unpack(w, lo, width);
        const unsigned g = codes_per_chunk(width);
        const uint64_t mask = (uint64_t(1) << width) - 1;
        uint32_t ok = 1;
        int64_t j = lo;
        for (; j + int64_t(g) <= hi; j += g) {
            uint64_t chunk = unpack.get(g * width);
            for (unsigned i = 0; i < g; ++i, chunk >>= width) {
                const uint64_t c = chunk & mask;
                out[j + i] = table[c];
                ok &= valid[c];
            }
        }
        for (; j < hi; ++j) {
            const uint64_t c = unpack.get(width);
            out[j] = table[c];
            ok &= valid[c];
        }
        return double(1 - ok);
    });
    if (bad != 0.0) fail(std::string(who) + ": code outside the codebook (malformed message)");
}

// General decoder: value(code, ok) -> float clears `ok` on a code outside the codebook.
template <class F>
void read_codes(const uint64_t* w, uint64_t d, unsigned width, float* out, const char* who, F&& value) {
    const double bad = block_sum(int64_t(d), [&](int64_t lo, int64_t hi) {
        CodeUnpacker unpack(w, lo, width);
        uint32_t ok = 1;
        for (int64_t j = lo; j < hi; ++j) out[j] = value(unpack.get(width), ok);
        return double(1 - ok);
    });
    if (bad != 0.0) fail(std::string(who) + ": code outside the codebook (malformed message)");
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
