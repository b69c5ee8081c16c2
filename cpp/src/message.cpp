#include "pyqsgd/message.hpp"

#include "pyqsgd/crc32c.hpp"

#include <cstring>
#include <stdexcept>

namespace pyqsgd {
namespace {

constexpr char kMagic[4] = {'P', 'Q', 'S', 'G'};

template <class T>
void put(std::string& out, T v) {
    char b[sizeof(T)];
    for (size_t i = 0; i < sizeof(T); ++i) b[i] = char((uint64_t(v) >> (8 * i)) & 0xFF);
    out.append(b, sizeof(T));
}

// Payload words in little-endian order: one copy on little-endian hosts.
void append_words(std::string& out, const uint64_t* w, size_t n) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    out.append(reinterpret_cast<const char*>(w), 8 * n);
#else
    for (size_t i = 0; i < n; ++i) put<uint64_t>(out, w[i]);
#endif
}

// Reads little-endian fields from s[0..end).
class ByteReader {
   public:
    ByteReader(const std::string& s, size_t end) : s_(s), end_(end) {}
    template <class T>
    T get(const char* field) {
        if (end_ - pos_ < sizeof(T) || pos_ > end_)
            throw std::invalid_argument(std::string("Message.from_bytes: truncated input while reading ") + field);
        uint64_t v = 0;
        for (size_t i = 0; i < sizeof(T); ++i) v |= uint64_t(uint8_t(s_[pos_ + i])) << (8 * i);
        pos_ += sizeof(T);
        return T(v);
    }
    // n little-endian u64 words (the caller checked that they are there).
    void get_words(uint64_t* out, size_t n) {
        if (n > remaining() / 8) throw std::invalid_argument("Message.from_bytes: truncated payload");
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (n) std::memcpy(out, s_.data() + pos_, 8 * n);
        pos_ += 8 * n;
#else
        for (size_t i = 0; i < n; ++i) out[i] = get<uint64_t>("payload");
#endif
    }
    size_t remaining() const { return end_ - pos_; }
    size_t pos() const { return pos_; }

   private:
    const std::string& s_;
    size_t end_;
    size_t pos_ = 0;
};

}  // namespace

std::string Message::to_bytes() const {
    std::string out;
    out.reserve(size_t(wire_bits() / 8));
    out.append(kMagic, 4);
    put<uint8_t>(out, kVersion);
    put<uint16_t>(out, tag);
    put<uint32_t>(out, fingerprint);
    put<uint64_t>(out, d);
    put<uint64_t>(out, key.seed);
    put<uint32_t>(out, key.round);
    put<uint32_t>(out, key.worker);
    put<uint32_t>(out, key.stream);
    put<uint32_t>(out, uint32_t(used_));
    for (size_t i = 0; i < used_; ++i) put<uint64_t>(out, sections_[i].bits);
    for (size_t i = 0; i < used_; ++i) append_words(out, sections_[i].words.data(), sections_[i].words.size());
    put<uint32_t>(out, crc32c(out.data(), out.size()));
    return out;
}

Message Message::from_bytes(const std::string& buf) {
    if (buf.size() < 4 || std::memcmp(buf.data(), kMagic, 4) != 0)
        throw std::invalid_argument("Message.from_bytes: not a pyqsgd message (bad magic bytes)");
    if (buf.size() < 5) throw std::invalid_argument("Message.from_bytes: truncated input while reading version");
    const uint8_t version = uint8_t(buf[4]);
    if (version == 1)
        throw std::invalid_argument("Message.from_bytes: format version 1 (pyqsgd 0.1) carries no checksum and is "
                                    "not read any more; re-encode the vector with this version");
    if (version != kVersion)
        throw std::invalid_argument("Message.from_bytes: unsupported format version " + std::to_string(version) +
                                    " (this build reads version " + std::to_string(kVersion) + ")");
    // The checksum first: any accidental corruption is reported as such. Everything below still
    // validates the structure (a forged message can carry a valid checksum).
    if (buf.size() < kHeaderBytes + 4) throw std::invalid_argument("Message.from_bytes: truncated input (header)");
    const size_t body = buf.size() - 4;
    uint32_t stored = 0;
    for (int i = 0; i < 4; ++i) stored |= uint32_t(uint8_t(buf[body + size_t(i)])) << (8 * i);
    if (crc32c(buf.data(), body) != stored)
        throw std::invalid_argument("Message.from_bytes: checksum mismatch: the message was corrupted (or truncated) "
                                    "in transit or storage");
    ByteReader r(buf, body);
    for (int i = 0; i < 5; ++i) r.get<uint8_t>("header");
    Message m;
    m.tag = r.get<uint16_t>("tag");
    m.fingerprint = r.get<uint32_t>("fingerprint");
    m.d = r.get<uint64_t>("d");
    m.key.seed = r.get<uint64_t>("key");
    m.key.round = r.get<uint32_t>("key");
    m.key.worker = r.get<uint32_t>("key");
    m.key.stream = r.get<uint32_t>("key");
    const uint32_t n = r.get<uint32_t>("section count");
    if (n > kMaxSections) throw std::invalid_argument("Message.from_bytes: implausible section count");
    if (uint64_t(n) * 8 > r.remaining()) throw std::invalid_argument("Message.from_bytes: truncated section table");
    std::vector<uint64_t> lens(n);
    uint64_t total_words = 0;
    for (uint32_t i = 0; i < n; ++i) {
        lens[i] = r.get<uint64_t>("section length");
        if (lens[i] > (uint64_t(1) << 50)) throw std::invalid_argument("Message.from_bytes: implausible section length");
        total_words += words_for(lens[i]);
    }
    if (total_words * 8 != r.remaining())
        throw std::invalid_argument("Message.from_bytes: payload size " + std::to_string(r.remaining()) +
                                    " bytes does not match the section table (" + std::to_string(total_words * 8) +
                                    " bytes expected)");
    for (uint32_t i = 0; i < n; ++i) {
        Section& s = m.add_for_overwrite(lens[i]);
        r.get_words(s.words.data(), s.words.size());
        // Bits past the section's length must be zero: anything else is corruption.
        const unsigned tail = unsigned(lens[i] & 63u);
        if (tail && (s.words.back() >> tail) != 0)
            throw std::invalid_argument("Message.from_bytes: nonzero padding bits (corrupted payload)");
    }
    return m;
}

const Section& SectionCursor::next(const char* who) {
    if (i_ >= m_.size()) throw std::invalid_argument(std::string(who) + ": message has too few sections");
    return m_.section(i_++);
}

}  // namespace pyqsgd
