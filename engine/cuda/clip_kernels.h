// Keras gradient clipping on the device (engine/optim/clip.h semantics):
// clipnorm per variable, global_clipnorm, clipvalue. Norms use a fixed
// two-stage order a CPU replays: sums of squares over chunks of
// kNormChunk consecutive elements (one thread each, fma in index order),
// then one thread adds the chunk sums in order.
#ifndef DRIFTSCOPE_ENGINE_CUDA_CLIP_KERNELS_H_
#define DRIFTSCOPE_ENGINE_CUDA_CLIP_KERNELS_H_

#include "engine/cuda/ds_hd.h"

namespace driftscope {
namespace dev {

constexpr int64_t kNormChunk = 4096;

inline int64_t NormChunks(int64_t n) {
  return (n + kNormChunk - 1) / kNormChunk;
}

struct SquaresArgs {
  const float* g = nullptr;
  int64_t n = 0;
  float* partial = nullptr;  // NormChunks(n) values
  DS_HD void operator()(int64_t c) const {
    const int64_t end = (c + 1) * kNormChunk < n ? (c + 1) * kNormChunk : n;
    float s = 0.0f;
    for (int64_t i = c * kNormChunk; i < end; ++i) s = Fma(g[i], g[i], s);
    partial[c] = s;
  }
  int64_t size() const { return NormChunks(n); }
};

enum ClipMode : int { kClipNorm = 0, kClipGlobalNorm = 1, kClipValue = 2 };

// One thread. kClipNorm: out = max(‖g‖, c) (with TF's guard: sqrt only of
// a positive sum). kClipGlobalNorm: out = c·min(1/‖g‖, 1/c) + (‖g‖ − ‖g‖),
// where inv_c is 1/c evaluated in double by the caller.
struct ClipFactorArgs {
  int mode = kClipNorm;
  const float* partial = nullptr;
  int64_t chunks = 0;
  float c = 0.0f, inv_c = 0.0f;
  float* out = nullptr;
  DS_HD void operator()(int64_t) const {
    float sum = 0.0f;
    for (int64_t i = 0; i < chunks; ++i) sum = Add(sum, partial[i]);
    if (mode == kClipNorm) {
      const float l2 = sum > 0.0f ? Sqrt(sum) : sum;
      *out = MaxNan(l2, c);
    } else {
      const float norm = Sqrt(sum);
      const float scale = Mul(c, MinNan(Div(1.0f, norm), inv_c));
      *out = Add(scale, Sub(norm, norm));
    }
  }
  int64_t size() const { return 1; }
};

struct ClipApplyArgs {
  int mode = kClipNorm;
  float* g = nullptr;
  int64_t n = 0;
  const float* factor = nullptr;  // ClipFactorArgs::out (norm modes)
  float c = 0.0f;                 // clipnorm, or clipvalue
  DS_HD void operator()(int64_t i) const {
    if (mode == kClipNorm) {
      g[i] = Div(Mul(g[i], c), *factor);
    } else if (mode == kClipGlobalNorm) {
      g[i] = Mul(g[i], *factor);
    } else {
      g[i] = MaxNan(MinNan(g[i], c), -c);
    }
  }
  int64_t size() const { return n; }
};

}  // namespace dev
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_CLIP_KERNELS_H_
