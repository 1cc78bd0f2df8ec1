// Forward and Backward allocate nothing once a layer has seen its largest
// batch (buffers are members that only grow). Counted by replacing the
// global operator new for this test binary; counting is off except inside
// the measured region, so other tests are unaffected.
#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

#include "engine/layers/layer.h"
#include "gtest/gtest.h"

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_news{0};
void* CountedAlloc(std::size_t n, std::size_t align) {
  if (g_counting.load(std::memory_order_relaxed)) ++g_news;
  if (n == 0) n = 1;
  void* p = align <= alignof(std::max_align_t)
                ? std::malloc(n)
                : std::aligned_alloc(align, (n + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return CountedAlloc(n, 0); }
void* operator new[](std::size_t n) { return CountedAlloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  return CountedAlloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return CountedAlloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}

namespace driftscope {
namespace {

TEST(LayerAllocationTest, ForwardAndBackwardDoNotAllocateAfterFirstCall) {
  Profile profile;
  profile.precision = Precision::kFp32;
  const Context ctx(profile);
  for (LayerKind kind : {LayerKind::kLstm, LayerKind::kGru,
                         LayerKind::kSimpleRnn, LayerKind::kDense}) {
    for (bool reset_after : {true, false}) {
      if (kind != LayerKind::kGru && !reset_after) continue;
      LayerSpec spec;
      spec.kind = kind;
      spec.units = 12;
      spec.reset_after = reset_after;
      spec.return_sequences = true;
      const ActivationShape in{true, 5, 3};
      auto layer = std::move(*MakeLayer<float>(spec, in, "l"));
      std::vector<float> params(layer->num_params(), 0.05f);
      std::vector<float> grads(params.size());
      const int big = 8, small = 3;
      std::vector<float> x(big * in.per_sample(), 0.5f);
      std::vector<float> y(big * layer->output_shape().per_sample());
      std::vector<float> dy(y.size(), 0.1f), dx(x.size());
      layer->Forward(ctx, params.data(), x.data(), big, y.data());
      layer->Backward(ctx, params.data(), dy.data(), dx.data(), grads.data());
      g_news = 0;
      g_counting = true;
      for (int batch : {big, small, big}) {
        layer->Forward(ctx, params.data(), x.data(), batch, y.data());
        layer->Backward(ctx, params.data(), dy.data(), dx.data(), grads.data());
      }
      g_counting = false;
      EXPECT_EQ(g_news.load(), 0) << "layer kind " << static_cast<int>(kind);
    }
  }
}

}  // namespace
}  // namespace driftscope
