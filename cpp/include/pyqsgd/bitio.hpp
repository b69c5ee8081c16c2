// Bit-level writer and reader over 64-bit words (LSB-first within a word).
//
// Sections of a message are word-aligned in memory so that kernels can fill disjoint word
// ranges from several threads; `bits` is the exact payload length and the only number that
// is ever accounted.
#pragma once
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace pyqsgd {

inline uint64_t words_for(uint64_t bits) { return (bits + 63) / 64; }

// Number of bits needed to write any value in [0, n): ceil(log2 n), at least 1 for n > 1.
inline unsigned bit_width_for(uint64_t n) {
    unsigned b = 0;
    while (b < 64 && (uint64_t(1) << b) < n) ++b;
    return b;
}

inline uint32_t float_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float bits_float(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// Writes `nbits` (<= 64) low bits of `value` at bit offset `pos` of `w` (pre-sized, zeroed).
inline void put_bits(uint64_t* w, uint64_t pos, uint64_t value, unsigned nbits) {
    if (nbits == 0) return;
    if (nbits < 64) value &= (uint64_t(1) << nbits) - 1;
    const uint64_t word = pos >> 6;
    const unsigned off = unsigned(pos & 63u);
    w[word] |= value << off;
    if (off + nbits > 64) w[word + 1] |= value >> (64 - off);
}

inline uint64_t get_bits(const uint64_t* w, uint64_t pos, unsigned nbits) {
    if (nbits == 0) return 0;
    const uint64_t word = pos >> 6;
    const unsigned off = unsigned(pos & 63u);
    uint64_t v = w[word] >> off;
    if (off + nbits > 64) v |= w[word + 1] << (64 - off);
    if (nbits < 64) v &= (uint64_t(1) << nbits) - 1;
    return v;
}

// Sequential writer appending to a growable word buffer.
class BitWriter {
   public:
    explicit BitWriter(std::vector<uint64_t>& words) : w_(words) { w_.clear(); }
    void write(uint64_t value, unsigned nbits) {
        const uint64_t need = words_for(pos_ + nbits);
        if (w_.size() < need) w_.resize(need, 0);
        put_bits(w_.data(), pos_, value, nbits);
        pos_ += nbits;
    }
    void write_f32(float f) { write(float_bits(f), 32); }
    uint64_t bits() const { return pos_; }

   private:
    std::vector<uint64_t>& w_;
    uint64_t pos_ = 0;
};

// Bounds-checked sequential reader: reading past `bits` throws instead of touching memory.
class BitReader {
   public:
    BitReader(const uint64_t* w, uint64_t bits, const char* what) : w_(w), bits_(bits), what_(what) {}
    uint64_t read(unsigned nbits) {
        if (nbits > bits_ - pos_ || pos_ > bits_)
            throw std::invalid_argument(std::string(what_) + ": message is truncated");
        const uint64_t v = get_bits(w_, pos_, nbits);
        pos_ += nbits;
        return v;
    }
    float read_f32() { return bits_float(uint32_t(read(32))); }
    uint64_t position() const { return pos_; }
    uint64_t remaining() const { return bits_ - pos_; }

   private:
    const uint64_t* w_;
    uint64_t bits_;
    const char* what_;
    uint64_t pos_ = 0;
};

}  // namespace pyqsgd
