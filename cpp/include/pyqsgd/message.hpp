// The wire format.
//
// A Message is a compressor tag, the dimension d, the shared key (both ends know it; it is
// what lets RandK regenerate indices instead of sending them) and a list of sections. Each
// section is a bit string; `bits()` = sum of section lengths = the exact payload, which is what
// every bit counter in the library adds up. The header (tag, d, key, lengths) is shared context
// and is not counted, exactly like a transport header.
//
// to_bytes(): "PQSG" | version u8 | tag u16 | fingerprint u32 | d u64 | key (u64,u32,u32,u32) |
//             n_sections u32 | n_sections x bits u64 | payload words (little-endian u64) |
//             crc32c u32 (CRC-32C of every byte before it; version 2).
// The checksum makes corruption in transit or storage an error instead of a silent wrong
// vector: d and the key are not otherwise redundant (a RandK message decodes under any key).
// Its 32 bits, like the rest of the framing, are not payload: bits() stays the research
// figure; wire_bits() counts every byte to_bytes() produces.
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "pyqsgd/alloc.hpp"
#include "pyqsgd/bitio.hpp"
#include "pyqsgd/rng.hpp"

namespace pyqsgd {

struct Section {
    uint64_t bits = 0;
    std::vector<uint64_t, HugePageAllocator<uint64_t>> words;  // large sections: huge pages
    // Sizes the section for `nbits` and zeroes it (capacity is reused across rounds).
    uint64_t* reset(uint64_t nbits) {
        bits = nbits;
        words.assign(words_for(nbits), 0);
        return words.data();
    }
    // Sizes the section for a kernel that writes every payload bit itself: only the last word
    // is zeroed (its padding bits must be zero on the wire).
    uint64_t* reset_for_overwrite(uint64_t nbits) {
        bits = nbits;
        words.resize(words_for(nbits));
        if (!words.empty()) words.back() = 0;
        return words.data();
    }
};

class Message {
   public:
    static constexpr uint8_t kVersion = 2;  // 2: trailing CRC-32C (version 1 had none)
    static constexpr uint64_t kMaxSections = 1 << 16;

    uint16_t tag = 0;
    uint32_t fingerprint = 0;  // hash of the compressor's parameters; decode checks it
    uint64_t d = 0;
    Key key;

    // Clears the payload but keeps section buffers for reuse.
    void begin(uint16_t tag_, uint32_t fp, uint64_t d_, const Key& k) {
        tag = tag_;
        fingerprint = fp;
        d = d_;
        key = k;
        used_ = 0;
    }
    // Appends a fresh section of `nbits` zero bits and returns its words.
    Section& add(uint64_t nbits) {
        if (used_ == sections_.size()) sections_.emplace_back();
        Section& s = sections_[used_++];
        s.reset(nbits);
        return s;
    }
    // Appends a section the caller overwrites completely (see Section::reset_for_overwrite).
    Section& add_for_overwrite(uint64_t nbits) {
        if (used_ == sections_.size()) sections_.emplace_back();
        Section& s = sections_[used_++];
        s.reset_for_overwrite(nbits);
        return s;
    }
    size_t size() const { return used_; }
    const Section& section(size_t i) const { return sections_[i]; }
    Section& section(size_t i) { return sections_[i]; }
    uint64_t bits() const {
        uint64_t b = 0;
        for (size_t i = 0; i < used_; ++i) b += sections_[i].bits;
        return b;
    }

    // Bits of to_bytes(): header, section table, payload words and checksum.
    uint64_t wire_bits() const {
        uint64_t words = 0;
        for (size_t i = 0; i < used_; ++i) words += sections_[i].words.size();
        return 8 * (kHeaderBytes + 8 * uint64_t(used_) + 8 * words + 4);
    }
    static constexpr uint64_t kHeaderBytes = 43;  // magic .. section count

    std::string to_bytes() const;
    // Validates everything: magic, version, checksum, lengths against the buffer size, section
    // count, padding bits.
    static Message from_bytes(const std::string& buf);

   private:
    std::deque<Section> sections_;  // references returned by add() stay valid as it grows
    size_t used_ = 0;
};

// Cursor over a message's sections while decoding (combinators consume them in order).
class SectionCursor {
   public:
    explicit SectionCursor(const Message& m, size_t start = 0) : m_(m), i_(start) {}
    size_t index() const { return i_; }
    const Section& next(const char* who);
    bool done() const { return i_ == m_.size(); }

   private:
    const Message& m_;
    size_t i_;
};

}  // namespace pyqsgd
