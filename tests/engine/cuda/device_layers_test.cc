// The device layers (engine/cuda/*_kernels.h driven by DeviceModel) on the
// cuda-emu backend, against the engine's float64 reference: every layer
// configuration's forward, final states, weight gradients and input gradient.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/cuda/device_model.h"
#include "engine/cuda/emu_ops.h"
#include "engine/reference/reference.h"
#include "gtest/gtest.h"
#include "tests/engine/reference/layer_test_util.h"

namespace driftscope {
namespace {

using testing_util::AllLayerConfigs;
using testing_util::Describe;
using testing_util::Flatten;
using testing_util::Lcg;
using testing_util::RandomWeights;

// |a − r| ≤ rtol·max(|r|, 0.1·max|r|), as the CPU layer tests judge float32.
void ExpectClose(const std::vector<float>& a, const std::vector<double>& r,
                 double rtol, const std::string& what) {
  ASSERT_EQ(a.size(), r.size()) << what;
  double scale = 0;
  for (double v : r) scale = std::max(scale, std::fabs(v));
  int bad = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    const double tol = rtol * std::max(std::fabs(r[i]), 0.1 * scale);
    if (!(std::fabs(static_cast<double>(a[i]) - r[i]) <= tol) && bad++ < 3) {
      ADD_FAILURE() << what << "[" << i << "]: device " << a[i]
                    << " vs reference " << r[i];
    }
  }
}

class DeviceRunner {
 public:
  explicit DeviceRunner(dev::DeviceOps* ops) : ops_(ops), arena_(ops) {}
  float* Put(const std::vector<float>& v) {
    float* p = *arena_.Floats(static_cast<int64_t>(v.size()));
    EXPECT_EQ(ops_->Upload(p, v.data(), v.size() * sizeof(float)),
              dev::OpStatus::kOk);
    return p;
  }
  float* Make(int64_t n) { return *arena_.Floats(n); }
  std::vector<float> Get(const float* p, int64_t n) {
    std::vector<float> v(static_cast<size_t>(n));
    EXPECT_EQ(ops_->Download(v.data(), p, n * sizeof(float)),
              dev::OpStatus::kOk);
    return v;
  }

 private:
  dev::DeviceOps* ops_;
  DeviceArena arena_;
};

std::vector<float> ToFloat(const std::vector<double>& v) {
  return std::vector<float>(v.begin(), v.end());
}

void CompareLayer(const LayerSpec& spec, const ActivationShape& in, int batch,
                  uint64_t seed, bool tf32, double rtol) {
  Lcg rng(seed);
  RefWeights w = RandomWeights(spec, in, &rng, 0.9);
  std::vector<double> x = rng.Vec(batch * in.per_sample(), 1.5);
  std::vector<double> dy =
      rng.Vec(batch * RefOutputShape(spec, in).per_sample(), 1.0);
  // The reference sees the float-rounded inputs: only arithmetic differs.
  for (auto& v : w)
    for (double& e : v) e = static_cast<float>(e);
  for (double& e : x) e = static_cast<float>(e);
  for (double& e : dy) e = static_cast<float>(e);

  std::unique_ptr<dev::DeviceOps> ops = NewEmulatedDeviceOps(tf32);
  ModelSpec model;
  model.timesteps = in.timesteps;
  model.features = in.dim;
  model.layers = {spec};
  absl::StatusOr<std::unique_ptr<DeviceModel>> m =
      DeviceModel::Create(ops.get(), model, batch, tf32);
  ASSERT_TRUE(m.ok()) << m.status();
  DeviceRunner run(ops.get());
  const std::vector<float> params = ToFloat(Flatten(w));
  ASSERT_EQ((*m)->num_params(), static_cast<int64_t>(params.size()));
  ASSERT_EQ(
      ops->Upload((*m)->params(), params.data(), params.size() * sizeof(float)),
      dev::OpStatus::kOk);
  const float* x_dev = run.Put(ToFloat(x));
  const float* y_dev = nullptr;
  ASSERT_TRUE((*m)->Forward(x_dev, batch, &y_dev).ok());
  std::vector<std::vector<double>> ref_states;
  const std::vector<double> ref_y =
      RefForward(spec, in, w, x, batch, &ref_states);
  ExpectClose(run.Get(y_dev, static_cast<int64_t>(ref_y.size())), ref_y, rtol,
              "y");
  const std::vector<const float*> states = (*m)->final_states();
  ASSERT_EQ(states.size(), ref_states.size());
  for (size_t s = 0; s < states.size(); ++s) {
    ExpectClose(run.Get(states[s], batch * spec.units), ref_states[s], rtol,
                "state " + std::to_string(s));
  }
  float* dx_dev = run.Make(static_cast<int64_t>(x.size()));
  ASSERT_TRUE((*m)->Backward(run.Put(ToFloat(dy)), dx_dev).ok());
  const RefLayerGrads g = RefBackward(spec, in, w, x, batch, dy);
  const std::vector<float> grads = run.Get((*m)->grads(), (*m)->num_params());
  size_t off = 0;
  for (size_t k = 0; k < g.dweights.size(); ++k) {
    ExpectClose(std::vector<float>(grads.begin() + off,
                                   grads.begin() + off + g.dweights[k].size()),
                g.dweights[k], rtol, "dweights[" + std::to_string(k) + "]");
    off += g.dweights[k].size();
  }
  ExpectClose(run.Get(dx_dev, static_cast<int64_t>(x.size())), g.dx, rtol,
              "dx");
}

// The same float32 bound the CPU layers meet (tests/engine/layers).
TEST(DeviceLayersTest, EmulatedKernelsAgreeWithFloat64ReferenceTo2e5) {
  uint64_t seed = 100;
  for (const LayerSpec& spec : AllLayerConfigs(3)) {
    SCOPED_TRACE(Describe(spec));
    CompareLayer(spec, {true, 4, 2}, 3, seed++, false, 2e-5);
    if (HasFailure()) return;
  }
}

// Several GEMM rows per step, D ≠ U, longer sequences.
TEST(DeviceLayersTest, LargerShapesAgreeWithFloat64Reference) {
  for (LayerKind kind :
       {LayerKind::kLstm, LayerKind::kGru, LayerKind::kSimpleRnn}) {
    for (bool reset_after : {true, false}) {
      if (kind != LayerKind::kGru && !reset_after) continue;
      LayerSpec spec;
      spec.kind = kind;
      spec.units = 37;
      spec.reset_after = reset_after;
      spec.return_sequences = true;
      SCOPED_TRACE(Describe(spec));
      CompareLayer(spec, {true, 6, 9}, 5, 9, false, 1e-4);
    }
  }
}

// TF32-rounded GEMM inputs keep ~3 decimal digits: still close to the
// reference at 2e-2 (kernels_test checks that the rounding really happens).
TEST(DeviceLayersTest, Tf32InputsAreRoundedAndStayClose) {
  LayerSpec spec;
  spec.kind = LayerKind::kLstm;
  spec.units = 8;
  spec.return_sequences = true;
  CompareLayer(spec, {true, 5, 4}, 3, 7, true, 2e-2);
}

}  // namespace
}  // namespace driftscope
