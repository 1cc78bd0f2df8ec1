// CPython's `random` module generator (MT19937 seeded the way
// `random.seed(int)` seeds it), so that the engine can replay the integers a
// Python program draws. Keras 3 gives every initializer without an explicit
// seed `random.randint(1, 10**9)` in its constructor (docs/keras.md), which
// is why this exists.
//
// Not std::mt19937(s): that seeds with init_genrand, CPython with
// init_by_array over the 32-bit words of |seed|. One object is one thread at
// a time; copying it copies the stream position.
#ifndef DRIFTSCOPE_ENGINE_RNG_PYTHON_RANDOM_H_
#define DRIFTSCOPE_ENGINE_RNG_PYTHON_RANDOM_H_

#include <array>
#include <cstdint>

namespace driftscope {

class PythonRandom {
 public:
  // The state after `random.seed(seed)` for an int seed >= 0.
  explicit PythonRandom(uint64_t seed);

  // The next raw 32-bit output (CPython genrand_uint32).
  uint32_t NextUint32();
  // random._randbelow(n) for 1 <= n < 2^32: the top bit_length(n) bits of
  // one word, rejected while >= n (each try consumes a word).
  uint32_t RandBelow(uint32_t n);
  // random.randint(a, b) for a <= b, b - a < 2^32 - 1.
  int64_t RandInt(int64_t a, int64_t b);

 private:
  static constexpr int kN = 624;
  void Refill();

  std::array<uint32_t, kN> mt_;
  int index_ = kN;
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_RNG_PYTHON_RANDOM_H_
