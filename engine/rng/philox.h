// Philox4x32-10 (Salmon et al., SC'11) and TensorFlow's stateless-random
// conventions built on it (docs/numerics.md §10). Pure functions; a
// PhiloxStream is one thread at a time.
#ifndef DRIFTSCOPE_ENGINE_RNG_PHILOX_H_
#define DRIFTSCOPE_ENGINE_RNG_PHILOX_H_

#include <array>
#include <cstdint>

namespace driftscope {

using PhiloxCounter = std::array<uint32_t, 4>;  // c0 least significant
using PhiloxKey = std::array<uint32_t, 2>;

// One 10-round block.
PhiloxCounter Philox4x32_10(const PhiloxCounter& counter, const PhiloxKey& key);

// TF's stateless seed → (key, counter) (stateless_random_ops.cc GenerateKey).
void TfStatelessKeyCounter(uint64_t s0, uint64_t s1, PhiloxKey* key,
                           PhiloxCounter* counter);

// TF's uint32 → float in [0,1): 23 low bits under 1.0f's exponent, minus 1.
float Uint32ToFloat(uint32_t x);
// TF's two uint32 → double in [0,1): 52 bits (x0 & 0xFFFFF high, x1 low).
double Uint64ToDouble(uint32_t x0, uint32_t x1);

// The uint32 words of tf.random.stateless_* with seed (s0, s1), in order:
// element i of a flat fill uses block i/4 (counter + i/4), word i%4.
class PhiloxStream {
 public:
  PhiloxStream(uint64_t s0, uint64_t s1);
  uint32_t NextUint32();
  // The next whole block (discards unread words of the current one).
  PhiloxCounter NextBlock();

 private:
  PhiloxKey key_;
  PhiloxCounter counter_;
  PhiloxCounter block_{};
  int used_ = 4;
};

// tf.random.stateless_uniform(shape=[n], seed=[s0, s1], dtype=float32),
// i.e. values in [0,1) (scale with u·(max−min)+min, two roundings).
void StatelessUniform(uint64_t s0, uint64_t s1, int64_t n, float* out);
// The same for dtype=float64 (two words per value: element i uses block
// i/2, words 2(i%2), 2(i%2)+1).
void StatelessUniform(uint64_t s0, uint64_t s1, int64_t n, double* out);
// tf.random.stateless_normal(shape=[n], seed=[s0, s1], dtype=float32): TF's
// Box-Muller (u1 clamped to ≥ 1e-7f, libm logf/sinf/cosf): not bit-portable
// across libms, unlike the uniform stream.
void StatelessNormal(uint64_t s0, uint64_t s1, int64_t n, float* out);

// Stream ids: the second seed word, one per purpose (DESIGN §5).
namespace streams {
constexpr uint64_t kShuffle = 1;
constexpr uint64_t kTrainData = 2;
constexpr uint64_t kEvalData = 3;
constexpr uint64_t kPerturb = 4;
constexpr uint64_t kTrainPadding = 5;  // data.synthetic.pad_tail_max
constexpr uint64_t kEvalPadding = 6;
// Initializer of weight `weight` (Layer::weights() index) of layer `layer`.
constexpr uint64_t Init(int layer, int weight) {
  return 1000 + 16 * static_cast<uint64_t>(layer) +
         static_cast<uint64_t>(weight);
}
// Dropout mask of layer `layer` (< 2^15) with counter `step` (< 2^48; the
// training step, or step·n + j for the j-th of n masks per step,
// engine/train/dropout.h): top bit set, so it meets no other stream id.
constexpr uint64_t Dropout(int layer, int64_t step) {
  return (uint64_t{1} << 63) | (static_cast<uint64_t>(layer) << 48) |
         static_cast<uint64_t>(step);
}
// The backward copy's masks of a Bidirectional layer `layer` (< 2^14; its
// forward copy uses Dropout(layer, step)): bit 62 set as well.
constexpr uint64_t BackwardDropout(int layer, int64_t step) {
  return Dropout(layer, step) | (uint64_t{1} << 62);
}
}  // namespace streams

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_RNG_PHILOX_H_
