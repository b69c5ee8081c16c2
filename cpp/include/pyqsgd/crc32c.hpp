// CRC-32C (Castagnoli, polynomial 0x1EDC6F41, reflected 0x82F63B78): the integrity check of
// the wire format. It detects every error of 1 to 5 bits in messages up to about 2^14 bytes,
// every burst up to 32 bits at any length, and any other corruption with probability
// 1 - 2^-32. Hardware instruction (SSE4.2) when the CPU has it, chosen at run time; the
// slice-by-8 table path gives the same value.
#pragma once
#include <cstddef>
#include <cstdint>

namespace pyqsgd {

// CRC-32C of data[0..n), continuing from `crc` (0 to start). crc32c("123456789") = 0xE3069283.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);
// The table path alone (for tests that compare both paths).
uint32_t crc32c_portable(const void* data, size_t n, uint32_t crc = 0);

}  // namespace pyqsgd
