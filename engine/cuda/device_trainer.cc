#include "engine/cuda/device_trainer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/cuda/cuda_backend_loader.h"
#include "engine/cuda/cudnn_layout.h"
#include "engine/cuda/device_layer.h"
#include "engine/cuda/device_model.h"
#include "engine/cuda/device_optimizer.h"
#include "engine/cuda/emu_ops.h"
#include "engine/optim/optimizer.h"
#include "engine/train/run_setup.h"
#include "engine/train/shuffle.h"

namespace driftscope {
namespace {

using namespace train_internal;  // NOLINT: the shared run setup

DeviceRunInfo Describe(const dev::DeviceDescription& d) {
  DeviceRunInfo info;
  info.backend = d.backend;
  info.gpu_name = d.gpu_name;
  info.compute_major = d.compute_major;
  info.compute_minor = d.compute_minor;
  info.driver_version = d.driver_version;
  info.runtime_version = d.runtime_version;
  info.cublas_version = d.cublas_version;
  info.cudnn_version = d.cudnn_version;
  info.math_mode = d.math_mode;
  return info;
}

// Eval outputs in chunks of `chunk` samples (as the CPU trainer, so the bits
// never depend on the eval-set size); fills states (each (n, U)) when not
// null.
absl::Status EvaluateOnDevice(dev::DeviceOps* ops, DeviceModel& model,
                              const float* x, int64_t n, int chunk, float* out,
                              std::vector<std::vector<float>>* states) {
  const int64_t in_size = model.input_shape().per_sample();
  const int64_t out_size = model.output_shape().per_sample();
  const int units = model.output_shape().dim;
  for (int64_t start = 0; start < n; start += chunk) {
    const int b = static_cast<int>(std::min<int64_t>(chunk, n - start));
    const float* y = nullptr;
    DS_RETURN_IF_ERROR(model.Forward(x + start * in_size, b, &y));
    DS_RETURN_IF_ERROR(
        DeviceStatus(*ops, ops->Download(out + start * out_size, y,
                                         sizeof(float) * b * out_size)));
    if (states == nullptr) continue;
    const std::vector<const float*> fs = model.final_states();
    states->resize(fs.size());
    for (size_t s = 0; s < fs.size(); ++s) {
      (*states)[s].resize(static_cast<size_t>(n * units));
      DS_RETURN_IF_ERROR(
          DeviceStatus(*ops, ops->Download((*states)[s].data() + start * units,
                                           fs[s], sizeof(float) * b * units)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<float*> UploadNew(dev::DeviceOps* ops, DeviceArena* arena,
                                 const std::vector<float>& host) {
  absl::StatusOr<float*> p = arena->Floats(static_cast<int64_t>(host.size()));
  if (!p.ok()) return p.status();
  if (!host.empty()) {
    DS_RETURN_IF_ERROR(DeviceStatus(
        *ops, ops->Upload(*p, host.data(), host.size() * sizeof(float))));
  }
  return *p;
}

// What the CPU engine runs but the device path does not yet: refused with
// the field's name, never ignored.
absl::Status CheckDeviceSupports(const JobSpec& spec, const Profile& profile) {
  if (spec.model.mask_value.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model.layers[0].masking: the GPU path (", profile.ToString(),
        ") does not support Masking yet; run this job on a CPU profile "
        "(fp32, ref64, ...)"));
  }
  for (size_t i = 0; i < spec.model.layers.size(); ++i) {
    const LayerSpec& l = spec.model.layers[i];
    if (l.kind == LayerKind::kEmbedding) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model.layers[", i, "].embedding: the GPU path (", profile.ToString(),
          ") does not support Embedding layers yet; run this job on a CPU "
          "profile (fp32, ref64, ...)"));
    }
    if (l.bidirectional) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model.layers[", i, "].bidirectional: the GPU path (",
          profile.ToString(),
          ") does not support Bidirectional layers yet; run this job on a "
          "CPU profile (fp32, ref64, ...)"));
    }
    if (l.recurrent_dropout != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model.layers[", i, "].recurrent_dropout is ", l.recurrent_dropout,
          ": the GPU path (", profile.ToString(),
          ") does not support recurrent_dropout yet; run this job on a CPU "
          "profile (fp32, ref64, ...) or set recurrent_dropout to 0"));
    }
    if (l.dropout != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model.layers[", i, "].dropout is ", l.dropout, ": the GPU path (",
          profile.ToString(),
          ") does not support dropout yet; run this job on a CPU profile "
          "(fp32, ref64, ...) or set dropout to 0"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RunResult> RunJobOnDeviceOps(const JobSpec& spec,
                                            const Profile& profile,
                                            const RunOptions& options,
                                            dev::DeviceOps* ops) {
  const Clock::time_point t0 = Clock::now();
  const TrainingSpec& tr = spec.training;
  const bool cudnn = profile.rnn == DeviceRnn::kCudnn;
  // Keras' conditions for its cuDNN path: a layer outside them is refused
  // with the reason, never run another way.
  DS_RETURN_IF_ERROR(CheckDeviceSupports(spec, profile));
  if (cudnn) DS_RETURN_IF_ERROR(CudnnCheckModel(spec.model.layers));
  RunData<float> data;
  DS_RETURN_IF_ERROR(PrepareData(spec, options, &data));
  ModelSpec model_spec = spec.model;
  if (profile.implementation != 0) {
    for (LayerSpec& l : model_spec.layers) {
      if (l.kind != LayerKind::kDense)
        l.implementation = profile.implementation;
    }
  }
  // The host model gives the weight layout and the initial weights exactly
  // as the CPU trainer makes them (max_batch 1: its buffers are not used).
  absl::StatusOr<std::unique_ptr<Model<float>>> host_model =
      Model<float>::Create(model_spec, 1);
  if (!host_model.ok()) return host_model.status();
  Model<float>& host = **host_model;
  DS_RETURN_IF_ERROR(InitializeWeights(spec, options, &host));
  PerturbWeights(profile.perturb, spec.seed, host.params(), host.num_params());
  // Validates the optimizer spec as the CPU run does.
  absl::StatusOr<std::unique_ptr<Optimizer<float>>> validated =
      Optimizer<float>::Create(spec.optimizer, host.variables());
  if (!validated.ok()) return validated.status();

  absl::StatusOr<std::unique_ptr<DeviceModel>> created =
      DeviceModel::Create(ops, model_spec, tr.batch_size,
                          profile.matmul == MatmulInputs::kTf32, cudnn);
  if (!created.ok()) return created.status();
  DeviceModel& model = **created;
  const int64_t num_params = model.num_params();
  const int64_t in_size = model.input_shape().per_sample();
  const int64_t out_size = model.output_shape().per_sample();
  const bool sequence = ModelOutputIsSequence(spec.model);
  const int units = ModelOutputUnits(spec.model);
  const int64_t n = data.n;
  const int B = tr.batch_size;
  const int64_t steps_per_epoch = (n + B - 1) / B;
  const int64_t total_steps = steps_per_epoch * tr.epochs;
  const int64_t max_rows = sequence ? int64_t{B} * spec.model.timesteps : B;

  DeviceArena arena(ops);
  absl::StatusOr<float*> x_dev = UploadNew(ops, &arena, data.x);
  if (!x_dev.ok()) return x_dev.status();
  absl::StatusOr<float*> y_dev = UploadNew(ops, &arena, data.y);
  if (!y_dev.ok()) return y_dev.status();
  absl::StatusOr<float*> eval_dev = UploadNew(ops, &arena, data.eval_x);
  if (!eval_dev.ok()) return eval_dev.status();
  absl::StatusOr<float*> xb = arena.Floats(B * in_size);
  absl::StatusOr<float*> yb = arena.Floats(B * out_size);
  absl::StatusOr<float*> dout = arena.Floats(B * out_size);
  absl::StatusOr<float*> row_means = arena.Floats(max_rows);
  absl::StatusOr<float*> loss_dev = arena.Floats(1);
  absl::StatusOr<int32_t*> idx_dev = arena.Ints(B);
  for (const absl::Status& s :
       {xb.status(), yb.status(), dout.status(), row_means.status(),
        loss_dev.status(), idx_dev.status()}) {
    if (!s.ok()) return s;
  }
  DS_RETURN_IF_ERROR(DeviceStatus(
      *ops,
      ops->Upload(model.params(), host.params(), num_params * sizeof(float))));
  DeviceOptimizer optimizer(ops, spec.optimizer);
  DS_RETURN_IF_ERROR(optimizer.Allocate(&arena, num_params));
  DeviceClipper clipper(ops, spec.optimizer, host.variables());
  DS_RETURN_IF_ERROR(clipper.Allocate(&arena));

  RunResult result;
  result.spec_digest = SpecDigest(spec);
  result.profile = profile.ToString();
  result.steps = total_steps;
  result.device = Describe(ops->description());
  result.losses = NdArray(DType::kFloat32, {total_steps});
  float* losses = result.losses.data<float>();
  const std::vector<int64_t> out_shape = OutputShape(spec.model, data.eval_n);

  std::vector<float> params(host.params(), host.params() + num_params);
  Fingerprinter<float> fingerprints(num_params);
  fingerprints.Reserve(static_cast<size_t>(total_steps + 1));
  fingerprints.Record(params.data(), num_params);

  std::vector<int64_t> order(static_cast<size_t>(n));
  std::vector<int32_t> idx(static_cast<size_t>(B));
  PhiloxStream shuffle_rng(spec.seed, streams::kShuffle);
  const Clock::time_point t1 = Clock::now();
  double eval_seconds = 0;

  int64_t step = 0;
  for (int epoch = 0; epoch < tr.epochs; ++epoch) {
    EpochOrder(tr.shuffle, &shuffle_rng, &order);
    for (int64_t start = 0; start < n; start += B) {
      if (options.cancel != nullptr && options.cancel->load()) {
        return absl::CancelledError(absl::StrCat(
            "run cancelled before step ", step + 1, " of ", total_steps));
      }
      const int b = static_cast<int>(std::min<int64_t>(B, n - start));
      for (int k = 0; k < b; ++k) {
        idx[k] = static_cast<int32_t>(order[start + k]);
      }
      DS_RETURN_IF_ERROR(DeviceStatus(
          *ops, ops->Upload(*idx_dev, idx.data(), sizeof(int32_t) * b)));
      dev::GatherRowsArgs gx;
      gx.src = *x_dev;
      gx.idx = *idx_dev;
      gx.rows = b;
      gx.width = in_size;
      gx.dst = *xb;
      DS_RETURN_IF_ERROR(DeviceStatus(*ops, ops->Run(gx)));
      dev::GatherRowsArgs gy = gx;
      gy.src = *y_dev;
      gy.width = out_size;
      gy.dst = *yb;
      DS_RETURN_IF_ERROR(DeviceStatus(*ops, ops->Run(gy)));

      const float* pred = nullptr;
      DS_RETURN_IF_ERROR(model.Forward(*xb, b, &pred));
      const int64_t rows = sequence ? int64_t{b} * spec.model.timesteps : b;
      dev::LossRowsArgs lr;
      lr.kind = static_cast<int>(spec.loss);
      lr.pred = pred;
      lr.target = *yb;
      lr.rows = rows;
      lr.dim = units;
      lr.row_means = *row_means;
      DS_RETURN_IF_ERROR(DeviceStatus(*ops, ops->Run(lr)));
      dev::LossTotalArgs lt;
      lt.row_means = *row_means;
      lt.rows = rows;
      lt.loss = *loss_dev;
      DS_RETURN_IF_ERROR(DeviceStatus(*ops, ops->Run(lt)));
      dev::LossGradArgs lg;
      lg.kind = lr.kind;
      lg.pred = pred;
      lg.target = *yb;
      lg.n = rows * units;
      // TF's backward: 1/rows (divide_no_nan), then / last_dim, in float.
      const float g_row = rows == 0 ? 0.0f : 1.0f / static_cast<float>(rows);
      lg.g = g_row / static_cast<float>(units);
      lg.dpred = *dout;
      DS_RETURN_IF_ERROR(DeviceStatus(*ops, ops->Run(lg)));
      DS_RETURN_IF_ERROR(model.Backward(*dout));
      DS_RETURN_IF_ERROR(clipper.Apply(model.grads(), num_params));
      DS_RETURN_IF_ERROR(optimizer.Step(model.params(), model.grads()));
      DS_RETURN_IF_ERROR(DeviceStatus(
          *ops, ops->Download(&losses[step], *loss_dev, sizeof(float))));
      DS_RETURN_IF_ERROR(
          DeviceStatus(*ops, ops->Download(params.data(), model.params(),
                                           num_params * sizeof(float))));
      ++step;
      fingerprints.Record(params.data(), num_params);
      if (options.on_progress) {
        options.on_progress(ProgressEvent{
            epoch, step, total_steps, static_cast<double>(losses[step - 1])});
      }
    }
    if (tr.capture_epoch_outputs) {
      const Clock::time_point e0 = Clock::now();
      NdArray snapshot(DType::kFloat32, out_shape);
      DS_RETURN_IF_ERROR(EvaluateOnDevice(ops, model, *eval_dev, data.eval_n, B,
                                          snapshot.data<float>(), nullptr));
      result.epoch_outputs.push_back(std::move(snapshot));
      eval_seconds += Seconds(e0, Clock::now());
    }
  }
  const Clock::time_point t2 = Clock::now();

  const bool want_states = spec.model.layers.back().return_state;
  std::vector<std::vector<float>> states;
  result.outputs = NdArray(DType::kFloat32, out_shape);
  DS_RETURN_IF_ERROR(EvaluateOnDevice(ops, model, *eval_dev, data.eval_n, B,
                                      result.outputs.data<float>(),
                                      want_states ? &states : nullptr));
  DS_RETURN_IF_ERROR(DeviceStatus(*ops, ops->Finish()));
  FinishRunResult<float>(states, data.eval_n, units, host.weights(),
                         params.data(), fingerprints, t0, t1, t2, eval_seconds,
                         &result);
  return result;
}

absl::StatusOr<RunResult> RunDeviceJob(const JobSpec& spec,
                                       const Profile& profile,
                                       const RunOptions& options) {
  if (profile.device == Device::kCudaEmu) {
    std::unique_ptr<dev::DeviceOps> ops =
        NewEmulatedDeviceOps(profile.matmul == MatmulInputs::kTf32);
    return RunJobOnDeviceOps(spec, profile, options, ops.get());
  }
  absl::StatusOr<std::unique_ptr<dev::DeviceOps>> ops =
      OpenCudaBackend(profile);
  if (!ops.ok()) return ops.status();
  return RunJobOnDeviceOps(spec, profile, options, ops->get());
}

}  // namespace driftscope
