#include "engine/rng/python_random.h"

#include <vector>

namespace driftscope {
namespace {

constexpr int kM = 397;
constexpr uint32_t kMatrixA = 0x9908b0dfu;
constexpr uint32_t kUpperMask = 0x80000000u;
constexpr uint32_t kLowerMask = 0x7fffffffu;

}  // namespace

PythonRandom::PythonRandom(uint64_t seed) {
  // random.seed(n) keys init_by_array with the 32-bit words of n, least
  // significant first; n == 0 is the one-word key [0].
  std::vector<uint32_t> key;
  for (uint64_t n = seed; n != 0; n >>= 32) {
    key.push_back(static_cast<uint32_t>(n));
  }
  if (key.empty()) key.push_back(0);

  // init_genrand(19650218)
  mt_[0] = 19650218u;
  for (int i = 1; i < kN; ++i) {
    mt_[i] = 1812433253u * (mt_[i - 1] ^ (mt_[i - 1] >> 30)) +
             static_cast<uint32_t>(i);
  }
  // init_by_array(key): all arithmetic mod 2^32 (uint32_t wraps).
  const int n = static_cast<int>(key.size());
  int i = 1, j = 0;
  for (int k = kN > n ? kN : n; k > 0; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1664525u)) +
             key[j] + static_cast<uint32_t>(j);
    ++i;
    ++j;
    if (i >= kN) {
      mt_[0] = mt_[kN - 1];
      i = 1;
    }
    if (j >= n) j = 0;
  }
  for (int k = kN - 1; k > 0; --k) {
    mt_[i] = (mt_[i] ^ ((mt_[i - 1] ^ (mt_[i - 1] >> 30)) * 1566083941u)) -
             static_cast<uint32_t>(i);
    ++i;
    if (i >= kN) {
      mt_[0] = mt_[kN - 1];
      i = 1;
    }
  }
  mt_[0] = 0x80000000u;  // non-zero initial state assured
  index_ = kN;
}

void PythonRandom::Refill() {
  auto mix = [](uint32_t upper, uint32_t lower, uint32_t far) {
    const uint32_t y = (upper & kUpperMask) | (lower & kLowerMask);
    return far ^ (y >> 1) ^ ((y & 1u) ? kMatrixA : 0u);
  };
  int k = 0;
  for (; k < kN - kM; ++k) mt_[k] = mix(mt_[k], mt_[k + 1], mt_[k + kM]);
  for (; k < kN - 1; ++k) {
    mt_[k] = mix(mt_[k], mt_[k + 1], mt_[k + (kM - kN)]);
  }
  mt_[kN - 1] = mix(mt_[kN - 1], mt_[0], mt_[kM - 1]);
  index_ = 0;
}

uint32_t PythonRandom::NextUint32() {
  if (index_ >= kN) Refill();
  uint32_t y = mt_[index_++];
  y ^= y >> 11;
  y ^= (y << 7) & 0x9d2c5680u;
  y ^= (y << 15) & 0xefc60000u;
  y ^= y >> 18;
  return y;
}

uint32_t PythonRandom::RandBelow(uint32_t n) {
  int bits = 0;
  for (uint32_t v = n; v != 0; v >>= 1) ++bits;
  // getrandbits(k) for k <= 32 is one word shifted right by 32 - k.
  for (;;) {
    const uint32_t r = NextUint32() >> (32 - bits);
    if (r < n) return r;
  }
}

int64_t PythonRandom::RandInt(int64_t a, int64_t b) {
  return a + RandBelow(static_cast<uint32_t>(b - a + 1));
}

}  // namespace driftscope
