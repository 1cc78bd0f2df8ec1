#include "server/common/crc32c.h"

#include <array>
#include <cstring>

namespace driftscope {

namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // Castagnoli, bit-reflected

struct Table {
  std::array<uint32_t, 256> v;
  constexpr Table() : v() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ ((c & 1) ? kPoly : 0);
      v[i] = c;
    }
  }
};
constexpr Table kTable;

uint32_t Crc32cTable(const uint8_t* p, size_t n, uint32_t crc) {
  for (size_t i = 0; i < n; ++i)
    crc = kTable.v[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return crc;
}

// Compiled for SSE4.2 only here, and called only when the CPU has it, so the
// rest of the binary keeps its baseline ISA.
__attribute__((target("sse4.2"))) uint32_t Crc32cHw(const uint8_t* p, size_t n,
                                                    uint32_t crc) {
  uint64_t c = crc;
  while (n >= 8) {
    uint64_t word;
    std::memcpy(&word, p, 8);
    c = __builtin_ia32_crc32di(c, word);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n > 0) {
    c32 = __builtin_ia32_crc32qi(c32, *p++);
    --n;
  }
  return c32;
}

bool HaveSse42() {
  static const bool have = __builtin_cpu_supports("sse4.2");
  return have;
}

}  // namespace

uint32_t Crc32c(const void* data, size_t size, uint32_t crc) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  const uint32_t c = ~crc;
  const uint32_t out =
      HaveSse42() ? Crc32cHw(p, size, c) : Crc32cTable(p, size, c);
  return ~out;
}

uint32_t Crc32cPortable(const void* data, size_t size, uint32_t crc) {
  return ~Crc32cTable(static_cast<const uint8_t*>(data), size, ~crc);
}

}  // namespace driftscope
