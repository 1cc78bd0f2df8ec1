#include "engine/rng/philox.h"

#include <cmath>
#include <cstring>

namespace driftscope {
namespace {

constexpr uint32_t kM0 = 0xD2511F53u;
constexpr uint32_t kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u;
constexpr uint32_t kW1 = 0xBB67AE85u;

inline void MulHiLo(uint32_t a, uint32_t b, uint32_t* hi, uint32_t* lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  *hi = static_cast<uint32_t>(p >> 32);
  *lo = static_cast<uint32_t>(p);
}

// 128-bit increment, c0 least significant (TF PhiloxRandom::SkipOne).
inline void SkipOne(PhiloxCounter* c) {
  for (uint32_t& w : *c) {
    if (++w != 0) return;
  }
}

}  // namespace

PhiloxCounter Philox4x32_10(const PhiloxCounter& counter,
                            const PhiloxKey& key) {
  PhiloxCounter c = counter;
  PhiloxKey k = key;
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k[0] += kW0;
      k[1] += kW1;
    }
    uint32_t hi0, lo0, hi1, lo1;
    MulHiLo(kM0, c[0], &hi0, &lo0);
    MulHiLo(kM1, c[2], &hi1, &lo1);
    c = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
  }
  return c;
}

void TfStatelessKeyCounter(uint64_t s0, uint64_t s1, PhiloxKey* key,
                           PhiloxCounter* counter) {
  const PhiloxKey key0 = {0x3ec8f720u, 0x02461e29u};
  const PhiloxCounter ctr0 = {
      static_cast<uint32_t>(s0), static_cast<uint32_t>(s0 >> 32),
      static_cast<uint32_t>(s1), static_cast<uint32_t>(s1 >> 32)};
  const PhiloxCounter mix = Philox4x32_10(ctr0, key0);
  *key = {mix[0], mix[1]};
  *counter = {0, 0, mix[2], mix[3]};
}

float Uint32ToFloat(uint32_t x) {
  const uint32_t bits = (127u << 23) | (x & 0x7FFFFFu);
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f - 1.0f;
}

double Uint64ToDouble(uint32_t x0, uint32_t x1) {
  const uint64_t mantissa =
      (static_cast<uint64_t>(x0 & 0xFFFFFu) << 32) | static_cast<uint64_t>(x1);
  const uint64_t bits = (uint64_t{1023} << 52) | mantissa;
  double d;
  std::memcpy(&d, &bits, sizeof(d));
  return d - 1.0;
}

PhiloxStream::PhiloxStream(uint64_t s0, uint64_t s1) {
  TfStatelessKeyCounter(s0, s1, &key_, &counter_);
}

PhiloxCounter PhiloxStream::NextBlock() {
  block_ = Philox4x32_10(counter_, key_);
  SkipOne(&counter_);
  used_ = 4;
  return block_;
}

uint32_t PhiloxStream::NextUint32() {
  if (used_ == 4) {
    NextBlock();
    used_ = 0;
  }
  return block_[used_++];
}

void StatelessUniform(uint64_t s0, uint64_t s1, int64_t n, float* out) {
  PhiloxStream stream(s0, s1);
  for (int64_t i = 0; i < n; ++i) out[i] = Uint32ToFloat(stream.NextUint32());
}

void StatelessUniform(uint64_t s0, uint64_t s1, int64_t n, double* out) {
  PhiloxStream stream(s0, s1);
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t x0 = stream.NextUint32();
    const uint32_t x1 = stream.NextUint32();
    out[i] = Uint64ToDouble(x0, x1);
  }
}

void StatelessNormal(uint64_t s0, uint64_t s1, int64_t n, float* out) {
  // TF's BoxMullerFloat (random_distributions.h), including its quirks: the
  // clamp keeps log() finite, and 2π·u is formed in double (M_PI is a double)
  // before rounding to float.
  PhiloxStream stream(s0, s1);
  for (int64_t i = 0; i < n; i += 2) {
    const uint32_t x0 = stream.NextUint32();
    const uint32_t x1 = stream.NextUint32();
    float u1 = Uint32ToFloat(x0);
    if (u1 < 1.0e-7f) u1 = 1.0e-7f;
    const float v1 = static_cast<float>(2.0f * M_PI * Uint32ToFloat(x1));
    const float r = std::sqrt(-2.0f * std::log(u1));
    float s, c;
#if defined(__linux__)
    sincosf(v1, &s, &c);  // what TF calls on Linux
#else
    s = std::sin(v1);
    c = std::cos(v1);
#endif
    out[i] = s * r;
    if (i + 1 < n) out[i + 1] = c * r;
  }
}

}  // namespace driftscope
