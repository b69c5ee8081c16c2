#include "pyqsgd/crc32c.hpp"

#include <array>
#include <cstring>
#if defined(__x86_64__) || defined(_M_X64)
#include <nmmintrin.h>
#define PYQSGD_CRC_X86 1
#endif

namespace pyqsgd {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

struct Tables {
    uint32_t t[8][256];
    Tables() {
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
            t[0][i] = c;
        }
        for (uint32_t i = 0; i < 256; ++i)
            for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xFF];
    }
};

const Tables& tables() {
    static const Tables tab;
    return tab;
}

#ifdef PYQSGD_CRC_X86
__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(const unsigned char* p, size_t n, uint32_t crc) {
    uint64_t c = ~crc;
    for (; n >= 8; p += 8, n -= 8) {
        uint64_t w;
        std::memcpy(&w, p, 8);
        c = _mm_crc32_u64(c, w);
    }
    uint32_t c32 = uint32_t(c);
    for (; n; ++p, --n) c32 = _mm_crc32_u8(c32, *p);
    return ~c32;
}

bool cpu_has_sse42() {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2");
}
#endif

}  // namespace

uint32_t crc32c_portable(const void* data, size_t n, uint32_t crc) {
    const auto& t = tables().t;
    const unsigned char* p = static_cast<const unsigned char*>(data);
    uint32_t c = ~crc;
    for (; n >= 8; p += 8, n -= 8) {  // slice-by-8 (little-endian byte order of the input)
        const uint32_t lo = c ^ (uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24);
        c = t[7][lo & 0xFF] ^ t[6][(lo >> 8) & 0xFF] ^ t[5][(lo >> 16) & 0xFF] ^ t[4][lo >> 24] ^ t[3][p[4]] ^
            t[2][p[5]] ^ t[1][p[6]] ^ t[0][p[7]];
    }
    for (; n; ++p, --n) c = (c >> 8) ^ t[0][(c ^ *p) & 0xFF];
    return ~c;
}

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
#ifdef PYQSGD_CRC_X86
    static const bool hw = cpu_has_sse42();
    if (hw) return crc32c_sse42(static_cast<const unsigned char*>(data), n, crc);
#endif
    return crc32c_portable(data, n, crc);
}

}  // namespace pyqsgd
