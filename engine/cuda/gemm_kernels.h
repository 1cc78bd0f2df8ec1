// The ordered GEMM of the deterministic device path (gemm=ordered-fma):
// C = op(A)·op(B), row-major, where ONE thread computes one output element
// as acc = 0; acc = fma(a_ik, b_kj, acc) for k = 0, 1, ..., K−1. That order
// is the whole contract: tiling may move memory, never the sums, so a CPU
// replays the bits exactly. With tf32, both inputs are first rounded to a
// 10-bit mantissa (nearest even), as the CPU's matmul=tf32 knob does.
#ifndef DRIFTSCOPE_ENGINE_CUDA_GEMM_KERNELS_H_
#define DRIFTSCOPE_ENGINE_CUDA_GEMM_KERNELS_H_

#include "engine/cuda/ds_hd.h"

namespace driftscope {
namespace dev {

// Round to the nearest TF32 value (8-bit exponent, 10-bit mantissa), ties
// to even; Inf and NaN pass unchanged.
DS_HD float RoundTf32(float x) {
  const uint32_t u = FloatBits(x);
  if ((u & 0x7f800000u) == 0x7f800000u) return x;
  const uint32_t lsb = (u >> 13) & 1u;
  return BitsFloat((u + 0xfffu + lsb) & ~0x1fffu);
}

struct GemmArgs {
  bool ta = false, tb = false;  // op(A) = Aᵀ, op(B) = Bᵀ
  int m = 0, n = 0, k = 0;      // C is m×n, the inner dimension k
  const float* a = nullptr;
  int lda = 0;
  const float* b = nullptr;
  int ldb = 0;
  float* c = nullptr;
  int ldc = 0;
  bool tf32 = false;

  DS_HD float A(int i, int kk) const {
    const float v = ta ? a[static_cast<int64_t>(kk) * lda + i]
                       : a[static_cast<int64_t>(i) * lda + kk];
    return tf32 ? RoundTf32(v) : v;
  }
  DS_HD float B(int kk, int j) const {
    const float v = tb ? b[static_cast<int64_t>(j) * ldb + kk]
                       : b[static_cast<int64_t>(kk) * ldb + j];
    return tf32 ? RoundTf32(v) : v;
  }
  // Output element idx = i·n + j.
  DS_HD void operator()(int64_t idx) const {
    const int i = static_cast<int>(idx / n), j = static_cast<int>(idx % n);
    float acc = 0.0f;
    for (int kk = 0; kk < k; ++kk) acc = Fma(A(i, kk), B(kk, j), acc);
    c[static_cast<int64_t>(i) * ldc + j] = acc;
  }
  int64_t size() const { return static_cast<int64_t>(m) * n; }
};

}  // namespace dev
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_GEMM_KERNELS_H_
