// The device optimizer step (engine/cuda/device_optimizer.cc over the
// optimizer_kernels.h functors), run on the cuda-emu backend, against the
// CPU engine's optimizer (engine/optim/optimizer.cc) on the same parameters
// and gradients: Adam, SGD and RMSprop, with and without Keras' decoupled
// weight_decay, bit for bit (both are float32, one rounding per operation,
// no contraction).
#include "engine/cuda/device_optimizer.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/cuda/device_model.h"
#include "engine/cuda/emu_ops.h"
#include "engine/job/job_spec.h"
#include "engine/optim/optimizer.h"
#include "gtest/gtest.h"

namespace driftscope {
namespace {

constexpr int kSteps = 3;

struct Case {
  std::string name;
  OptimizerSpec spec;
};

std::vector<Case> Cases(std::optional<double> weight_decay) {
  std::vector<Case> cases;
  OptimizerSpec base;
  base.learning_rate = 0.01;
  base.clipnorm.reset();
  base.global_clipnorm.reset();
  base.clipvalue.reset();
  base.weight_decay = weight_decay;
  OptimizerSpec adam = base;
  adam.kind = OptimizerKind::kAdam;
  cases.push_back({"adam", adam});
  adam.amsgrad = true;
  cases.push_back({"adam amsgrad", adam});
  OptimizerSpec sgd = base;
  sgd.kind = OptimizerKind::kSgd;
  sgd.learning_rate = 0.05;
  cases.push_back({"sgd", sgd});
  sgd.momentum = 0.9;
  sgd.nesterov = true;
  cases.push_back({"sgd momentum nesterov", sgd});
  OptimizerSpec rms = base;
  rms.kind = OptimizerKind::kRmsprop;
  cases.push_back({"rmsprop", rms});
  rms.centered = true;
  rms.momentum = 0.5;
  cases.push_back({"rmsprop centered momentum", rms});
  return cases;
}

// Parameters with the values that catch a careless decay: -0, +0, large
// and tiny magnitudes, then random ones.
std::vector<float> Params(int64_t n) {
  std::vector<float> p = {-0.0f, 0.0f, 3.0e4f, -2.5e-30f, 1.0f, -1.0f};
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  while (static_cast<int64_t>(p.size()) < n) p.push_back(u(rng));
  return p;
}

std::vector<float> Grads(int64_t n, int step) {
  std::mt19937 rng(100 + step);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  std::vector<float> g(static_cast<size_t>(n));
  for (float& x : g) x = u(rng);
  // Zero gradients on -0 and +0: -0 - (-0 * wd) * lr is +0, so the decay
  // shows even in the sign of a zero.
  g[0] = 0.0f;
  g[1] = 0.0f;
  return g;
}

// Two variables, as a layer's kernel and bias.
const std::vector<VariableSlice> kVars = {{0, 700}, {700, 37}};
constexpr int64_t kN = 737;

std::vector<float> CpuSteps(const OptimizerSpec& spec) {
  absl::StatusOr<std::unique_ptr<Optimizer<float>>> opt =
      Optimizer<float>::Create(spec, kVars);
  EXPECT_TRUE(opt.ok()) << opt.status();
  std::vector<float> p = Params(kN);
  if (!opt.ok()) return p;
  for (int s = 0; s < kSteps; ++s) {
    std::vector<float> g = Grads(kN, s);
    (*opt)->Apply(p.data(), g.data());
  }
  return p;
}

std::vector<float> EmuSteps(const OptimizerSpec& spec) {
  std::unique_ptr<dev::DeviceOps> ops = NewEmulatedDeviceOps(false);
  DeviceArena arena(ops.get());
  std::vector<float> p = Params(kN);
  absl::StatusOr<float*> p_dev = arena.Floats(kN);
  absl::StatusOr<float*> g_dev = arena.Floats(kN);
  EXPECT_TRUE(p_dev.ok() && g_dev.ok());
  if (!p_dev.ok() || !g_dev.ok()) return p;
  EXPECT_EQ(ops->Upload(*p_dev, p.data(), kN * sizeof(float)),
            dev::OpStatus::kOk);
  DeviceOptimizer opt(ops.get(), spec);
  EXPECT_TRUE(opt.Allocate(&arena, kN).ok());
  for (int s = 0; s < kSteps; ++s) {
    const std::vector<float> g = Grads(kN, s);
    EXPECT_EQ(ops->Upload(*g_dev, g.data(), kN * sizeof(float)),
              dev::OpStatus::kOk);
    const absl::Status st = opt.Step(*p_dev, *g_dev);
    EXPECT_TRUE(st.ok()) << st;
  }
  EXPECT_EQ(ops->Download(p.data(), *p_dev, kN * sizeof(float)),
            dev::OpStatus::kOk);
  return p;
}

int64_t BitDifferences(const std::vector<float>& a,
                       const std::vector<float>& b) {
  int64_t n = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    n += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  }
  return n;
}

TEST(DeviceOptimizerTest, EveryOptimizerEqualsTheCpuOptimizerBitForBit) {
  for (const Case& c : Cases(std::nullopt)) {
    SCOPED_TRACE(c.name);
    EXPECT_EQ(BitDifferences(EmuSteps(c.spec), CpuSteps(c.spec)), 0);
  }
}

// Keras' weight_decay (AdamW's default 0.004, and a strong 0.3): the device
// decays inside the update functor exactly as the CPU does before its
// update, for every optimizer kind.
TEST(DeviceOptimizerTest, WeightDecayEqualsTheCpuOptimizerBitForBit) {
  for (double wd : {0.004, 0.3}) {
    const std::vector<Case> plain = Cases(std::nullopt);
    const std::vector<Case> decayed = Cases(wd);
    for (size_t i = 0; i < decayed.size(); ++i) {
      SCOPED_TRACE(decayed[i].name + ", weight_decay " + std::to_string(wd));
      const std::vector<float> cpu = CpuSteps(decayed[i].spec);
      const std::vector<float> emu = EmuSteps(decayed[i].spec);
      EXPECT_EQ(BitDifferences(emu, cpu), 0);
      // The decay moved the weights: a device that ignored weight_decay
      // would fail the comparison above.
      EXPECT_GT(BitDifferences(cpu, CpuSteps(plain[i].spec)), kN / 2);
    }
  }
}

}  // namespace
}  // namespace driftscope
