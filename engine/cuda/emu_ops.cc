#include "engine/cuda/emu_ops.h"

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

  // The bits of GemmArgs::operator() for every element (each C element is
  // 0, then fma with k = 0, 1, ... in order), computed row by row with the
  // k loop outside the j loop so the compiler can run many elements' chains
  // side by side. op(B) is first copied (transposed and/or TF32-rounded) into
  // a row-major K×N scratch: that moves values, never changes them.
  OpStatus Gemm(const dev::GemmArgs& in, dev::GemmRole) override {
    dev::GemmArgs g = in;
    g.tf32 = in.tf32 || tf32_;
    const int m = g.m, n = g.n, k = g.k;
    const float* b = g.b;
    int64_t ldb = g.ldb;
    if (g.tb || g.tf32) {
      b_.resize(static_cast<size_t>(k) * n);
      for (int kk = 0; kk < k; ++kk)
        for (int j = 0; j < n; ++j)
          b_[static_cast<size_t>(kk) * n + j] = g.B(kk, j);
      b = b_.data();
      ldb = n;
    }
    for (int i = 0; i < m; ++i) {
      float* __restrict c = g.c + static_cast<int64_t>(i) * g.ldc;
      for (int j = 0; j < n; ++j) c[j] = 0.0f;
      for (int kk = 0; kk < k; ++kk) {
        const float a = g.A(i, kk);
        const float* __restrict brow = b + kk * ldb;
        for (int j = 0; j < n; ++j) c[j] = dev::Fma(a, brow[j], c[j]);
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

 private:
  const bool tf32_;
  dev::DeviceDescription description_;
  std::string error_;
  std::vector<float> b_;
};

}  // namespace

std::unique_ptr<dev::DeviceOps> NewEmulatedDeviceOps(bool tf32) {
  return std::make_unique<EmulatedDeviceOps>(tf32);
}

}  // namespace driftscope
