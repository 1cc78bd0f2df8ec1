#include "engine/cuda/emu_ops.h"

#include <immintrin.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

namespace driftscope {
namespace {

using dev::OpStatus;

template <typename Args>
OpStatus ForEach(const Args& args) {
  const int64_t n = args.size();
  for (int64_t i = 0; i < n; ++i) args(i);
  return OpStatus::kOk;
}

class EmulatedDeviceOps final : public dev::DeviceOps {
 public:
  explicit EmulatedDeviceOps(bool tf32) : tf32_(tf32) {
    std::strncpy(description_.backend, "cuda-emu",
                 sizeof(description_.backend) - 1);
    std::strncpy(description_.gpu_name, "none (host emulation)",
                 sizeof(description_.gpu_name) - 1);
    std::strncpy(description_.math_mode,
                 tf32 ? "ordered-fma, TF32-rounded inputs" : "ordered-fma",
                 sizeof(description_.math_mode) - 1);
  }

  const dev::DeviceDescription& description() const override {
    return description_;
  }
  const char* last_error() const override { return error_.c_str(); }

  OpStatus Alloc(size_t bytes, void** out) override {
    // 64-byte aligned like the CPU layers' buffers.
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (p == nullptr) {
      error_ = "host emulation: out of memory allocating " +
               std::to_string(bytes) + " bytes";
      return OpStatus::kOutOfMemory;
    }
    *out = p;
    return OpStatus::kOk;
  }
  void Free(void* p) override { std::free(p); }
  OpStatus Upload(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
    return OpStatus::kOk;
  }
  OpStatus Download(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
    return OpStatus::kOk;
  }
  OpStatus Zero(void* dst, size_t bytes) override {
    std::memset(dst, 0, bytes);
    return OpStatus::kOk;
  }
  OpStatus Copy(void* dst, const void* src, size_t bytes) override {
    std::memmove(dst, src, bytes);
    return OpStatus::kOk;
  }
  OpStatus Finish() override { return OpStatus::kOk; }
  OpStatus MemoryInfo(size_t* free_bytes, size_t* total_bytes) override {
    *free_bytes = 0;
    *total_bytes = 0;
    return OpStatus::kOk;
  }

  // The bits of GemmArgs::operator() for every element (each C element is
  // 0, then fma with k = 0, 1, ... in order), computed in register tiles of
  // up to 6 rows × kCols columns with the k loop outside, so many elements'
  // chains run side by side. op(A) and op(B) are first copied (transposed
  // and/or TF32-rounded) into row-major scratch: that moves values, never
  // changes them.
  OpStatus Gemm(const dev::GemmArgs& in, dev::GemmRole) override {
    dev::GemmArgs g = in;
    g.tf32 = in.tf32 || tf32_;
    const int m = g.m, n = g.n, k = g.k;
    Operand a{g.a, g.lda}, b{g.b, g.ldb};
    if (g.ta || g.tf32) {
      a_.resize(static_cast<size_t>(m) * k);
      for (int i = 0; i < m; ++i)
        for (int kk = 0; kk < k; ++kk)
          a_[static_cast<size_t>(i) * k + kk] = g.A(i, kk);
      a = {a_.data(), k};
    }
    if (g.tb || g.tf32) {
      b_.resize(static_cast<size_t>(k) * n);
      for (int kk = 0; kk < k; ++kk)
        for (int j = 0; j < n; ++j)
          b_[static_cast<size_t>(kk) * n + j] = g.B(kk, j);
      b = {b_.data(), n};
    }
    // One panel of kCols columns of op(B) at a time, packed contiguous
    // (k × kCols) so every row tile streams it from cache.
    int j0 = 0;
    panel_.resize(static_cast<size_t>(k) * kCols);
    for (; j0 + kCols <= n; j0 += kCols) {
      for (int kk = 0; kk < k; ++kk)
        std::memcpy(&panel_[static_cast<size_t>(kk) * kCols],
                    b.p + kk * b.ld + j0, sizeof(float) * kCols);
      int i = 0;
      for (; i + 6 <= m; i += 6)
        Tile<6>(a, panel_.data(), i, j0, k, g.c, g.ldc);
      for (; i + 4 <= m; i += 4)
        Tile<4>(a, panel_.data(), i, j0, k, g.c, g.ldc);
      for (; i < m; ++i) Tile<1>(a, panel_.data(), i, j0, k, g.c, g.ldc);
    }
    // The last columns (fewer than a panel), element by element.
    for (int i = 0; i < m; ++i) {
      for (int j = j0; j < n; ++j) {
        float acc = 0.0f;
        for (int kk = 0; kk < k; ++kk)
          acc = dev::Fma(a.p[i * a.ld + kk], b.p[kk * b.ld + j], acc);
        g.c[static_cast<int64_t>(i) * g.ldc + j] = acc;
      }
    }
    return OpStatus::kOk;
  }

  OpStatus Run(const dev::GatherRowsArgs& a) override { return ForEach(a); }
  OpStatus Run(const dev::TimeMajorArgs& a) override { return ForEach(a); }
  OpStatus Run(const dev::AddBiasArgs& a) override { return ForEach(a); }
  OpStatus Run(const dev::BiasGradArgs& a) override { return ForEach(a); }
  OpStatus Run(const dev::LstmForwardArgs& a) override { return ForEach(a); }
  OpStatus Run(const dev::LstmBackwardArgs& a) override { return ForEach(a); }
  OpStatus Run(const dev::GruForwardArgs& a) override { return ForEach(a); }
  OpStatus Run(const dev::GruBackwardArgs& a) override { return ForEach(a); }
  OpStatus Run(const dev::SimpleRnnForwardArgs& a) override {
    return ForEach(a);
  }
  OpStatus Run(const dev::SimpleRnnBackwardArgs& a) override {
    return ForEach(a);
  }
  OpStatus Run(const dev::DenseForwardArgs& a) override { return ForEach(a); }
  OpStatus Run(const dev::DenseBackwardArgs& a) override { return ForEach(a); }
  OpStatus Run(const dev::LossRowsArgs& a) override { return ForEach(a); }
  OpStatus Run(const dev::LossTotalArgs& a) override { return ForEach(a); }
  OpStatus Run(const dev::LossGradArgs& a) override { return ForEach(a); }
  OpStatus Run(const dev::SquaresArgs& a) override { return ForEach(a); }
  OpStatus Run(const dev::ClipFactorArgs& a) override { return ForEach(a); }
  OpStatus Run(const dev::ClipApplyArgs& a) override { return ForEach(a); }
  OpStatus Run(const dev::AdamArgs& a) override { return ForEach(a); }
  OpStatus Run(const dev::SgdArgs& a) override { return ForEach(a); }
  OpStatus Run(const dev::RmspropArgs& a) override { return ForEach(a); }

  OpStatus CudnnLayerCreate(const LayerSpec&, int, int, int, int*) override {
    return Unsupported();
  }
  OpStatus CudnnLayerForward(int, const float*, const float*, int,
                             float*) override {
    return Unsupported();
  }
  OpStatus CudnnLayerBackward(int, const float*, float*, float*) override {
    return Unsupported();
  }
  OpStatus CudnnLayerStates(int, const float**, int*) override {
    return Unsupported();
  }

 private:
  OpStatus Unsupported() {
    error_ =
        "the host emulation cannot run cuDNN (rnn=cudnn needs device=cuda)";
    return OpStatus::kUnsupported;
  }

  struct Operand {
    const float* p;
    int64_t ld;
  };
  static constexpr int kCols = 16;

  // C[i0 .. i0+R-1][j0 .. j0+kCols-1] from the packed panel (k × kCols).
  template <int R>
  static void Tile(const Operand& a, const float* panel, int i0, int j0, int k,
                   float* c, int ldc) {
#ifdef __FMA__
    // _mm256_fmadd_ps is the IEEE fma of each lane: the bits of dev::Fma.
    __m256 acc[R][2];
    for (int r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int kk = 0; kk < k; ++kk) {
      const float* br = panel + kk * kCols;
      const __m256 b0 = _mm256_loadu_ps(br), b1 = _mm256_loadu_ps(br + 8);
      for (int r = 0; r < R; ++r) {
        const __m256 av = _mm256_set1_ps(a.p[(i0 + r) * a.ld + kk]);
        acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
        acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
      }
    }
    for (int r = 0; r < R; ++r) {
      float* cr = c + static_cast<int64_t>(i0 + r) * ldc + j0;
      _mm256_storeu_ps(cr, acc[r][0]);
      _mm256_storeu_ps(cr + 8, acc[r][1]);
    }
#else
    for (int r = 0; r < R; ++r) {
      for (int j = 0; j < kCols; ++j) {
        float acc = 0.0f;
        for (int kk = 0; kk < k; ++kk)
          acc = dev::Fma(a.p[(i0 + r) * a.ld + kk], panel[kk * kCols + j], acc);
        c[static_cast<int64_t>(i0 + r) * ldc + j0 + j] = acc;
      }
    }
#endif
  }

  const bool tf32_;
  dev::DeviceDescription description_;
  std::string error_;
  std::vector<float> a_, b_, panel_;
};

}  // namespace

std::unique_ptr<dev::DeviceOps> NewEmulatedDeviceOps(bool tf32) {
  return std::make_unique<EmulatedDeviceOps>(tf32);
}

}  // namespace driftscope
