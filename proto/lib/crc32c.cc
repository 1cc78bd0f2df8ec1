#include "proto/lib/crc32c.h"

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

// The crc32 instruction takes 3 cycles but can start one per cycle, so
// three independent lanes run at about three times the speed of one. The
// lanes' states are joined with the CRC of kLaneBytes zero bytes applied as
// a linear map: crc(A‖B) = Shift(crc(A)) ^ crc₀(B), where crc₀ starts from 0.
constexpr size_t kLaneBytes = 4096;

// Shift(state) for |B| = kLaneBytes, as four byte-indexed tables.
struct LaneShift {
  uint32_t t[4][256];
};

__attribute__((target("sse4.2"))) LaneShift MakeLaneShift() {
  // Shift is linear over GF(2): the image of each of the 32 unit states,
  // then every byte value as the XOR of its bits' images.
  const uint8_t zeros[kLaneBytes] = {};
  uint32_t unit[32];
  for (int bit = 0; bit < 32; ++bit) {
    unit[bit] = Crc32cHw(zeros, kLaneBytes, uint32_t{1} << bit);
  }
  LaneShift s;
  for (int k = 0; k < 4; ++k) {
    for (uint32_t b = 0; b < 256; ++b) {
      uint32_t v = 0;
      for (int bit = 0; bit < 8; ++bit) {
        if (b & (1u << bit)) v ^= unit[8 * k + bit];
      }
      s.t[k][b] = v;
    }
  }
  return s;
}

uint32_t Shift(const LaneShift& s, uint32_t crc) {
  return s.t[0][crc & 0xFF] ^ s.t[1][(crc >> 8) & 0xFF] ^
         s.t[2][(crc >> 16) & 0xFF] ^ s.t[3][crc >> 24];
}

__attribute__((target("sse4.2"))) uint32_t Crc32cHw3(const uint8_t* p, size_t n,
                                                     uint32_t crc) {
  static const LaneShift kShift = MakeLaneShift();
  while (n >= 3 * kLaneBytes) {
    uint64_t c0 = crc, c1 = 0, c2 = 0;
    for (size_t i = 0; i < kLaneBytes; i += 8) {
      uint64_t w0, w1, w2;
      std::memcpy(&w0, p + i, 8);
      std::memcpy(&w1, p + kLaneBytes + i, 8);
      std::memcpy(&w2, p + 2 * kLaneBytes + i, 8);
      c0 = __builtin_ia32_crc32di(c0, w0);
      c1 = __builtin_ia32_crc32di(c1, w1);
      c2 = __builtin_ia32_crc32di(c2, w2);
    }
    crc = Shift(kShift, static_cast<uint32_t>(c0)) ^ static_cast<uint32_t>(c1);
    crc = Shift(kShift, crc) ^ static_cast<uint32_t>(c2);
    p += 3 * kLaneBytes;
    n -= 3 * kLaneBytes;
  }
  return Crc32cHw(p, n, crc);
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
      HaveSse42() ? Crc32cHw3(p, size, c) : Crc32cTable(p, size, c);
  return ~out;
}

uint32_t Crc32cPortable(const void* data, size_t size, uint32_t crc) {
  return ~Crc32cTable(static_cast<const uint8_t*>(data), size, ~crc);
}

}  // namespace driftscope
