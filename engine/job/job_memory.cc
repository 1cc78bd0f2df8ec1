#include "engine/job/job_memory.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace driftscope {

namespace {

// Every count is a double so that absurd specs (10^7 samples × 10^5 steps ×
// 4096 units) neither overflow nor wrap; Bytes() saturates.
constexpr double kSaturate =
    static_cast<double>(std::numeric_limits<int64_t>::max() / 16);

int64_t Bytes(double b) {
  if (!(b > 0)) return 0;
  return b >= kSaturate ? static_cast<int64_t>(kSaturate)
                        : static_cast<int64_t>(b);
}

// A Fingerprint in the result (step, two std::string of 64 hex digits on
// the heap) plus the two raw digests kept while training, with malloc's
// rounding: measured at about 260 bytes a step.
constexpr double kFingerprintBytesPerStep = 320;
// A worker's queue of event chunks on the wire and gRPC's own buffers, or
// the CLI's file writers: a few 1 MiB chunks.
constexpr double kTransferBytes = 16.0 * 1024 * 1024;

struct LayerCost {
  double params = 0;    // weights of the layer
  double packed = 0;    // packed copies of recurrent kernels
  double caches = 0;    // per-batch activation caches (values)
  double scratch = 0;   // largest GEMM operand (values), for rounding copies
  double gemm_out = 0;  // largest GEMM output (values), for split-k partials
};

LayerCost CostOf(const LayerSpec& l, bool sequence_in, int timesteps,
                 double width, double batch) {
  if (l.bidirectional) {
    // Two copies, plus both outputs, the raw backward output and their
    // gradients (engine/layers/bidirectional.cc) and the second dx. Each
    // copy carries the wrapped layer's dropout, so the doubled caches count
    // both copies' masks and masked inputs (the model keeps none for a
    // Bidirectional layer).
    LayerCost c =
        CostOf(DirectionSpec(l, false), sequence_in, timesteps, width, batch);
    const double out_rows =
        (l.return_sequences ? timesteps : 1) * batch * l.units;
    c.params *= 2;
    c.packed *= 2;
    c.caches = 2 * c.caches + 5 * out_rows +
               (sequence_in ? timesteps : 1) * batch * width;
    return c;
  }
  LayerCost c;
  const double u = l.units;
  const double d = width;
  const double steps = sequence_in ? timesteps : 1;
  const double rows = steps * batch;
  switch (l.kind) {
    case LayerKind::kLstm:
    case LayerKind::kGru: {
      const double gates = (l.kind == LayerKind::kLstm ? 4 : 3) * u;
      c.params = d * gates + u * gates + 2 * gates;
      c.packed = 2 * gates * u;
      // Inputs and their gradient time-major (2d), gates and their
      // gradients, states and their pre-activations: 10 values of u a row.
      c.caches = rows * (2 * d + 10 * u) + batch * (8 * u + gates) + gates * u +
                 steps * gates + 2 * u;
      // Both operands of a weight gradient (inputs or states by gate
      // gradients) can be rows long.
      c.scratch = 2 * rows * std::max(d, gates) + gates * std::max(d, u);
      c.gemm_out = rows * gates;
      break;
    }
    case LayerKind::kSimpleRnn:
      c.params = d * u + u * u + u;
      c.packed = 2 * u * u;
      c.caches = rows * (2 * d + 2 * u) + batch * 3 * u + u * u + u;
      c.scratch = 2 * rows * std::max(d, u) + u * std::max(d, u);
      c.gemm_out = rows * u;
      break;
    case LayerKind::kDense:
      c.params = d * u + u;
      c.caches = 2 * rows * u + u;
      c.scratch = 2 * rows * std::max(d, u) + d * u;
      c.gemm_out = rows * u;
      break;
    case LayerKind::kEmbedding:
      // The (input_dim, output_dim) table (with its gradient and optimizer
      // state, counted per parameter); the ids of a batch are its cache.
      c.params = static_cast<double>(l.input_dim) * u;
      c.caches = rows;
      break;
  }
  if (UsesGateMasks(l)) {
    // Per-gate masks (engine/layers/gate_masked_rnn.cc): the input and the
    // states as each gate sees them, a second input-gradient buffer, and
    // the step's masks (engine/train/dropout.h).
    const double g = GateMaskCount(l);
    c.caches += g * rows * (d + u) + rows * d +
                batch * (InputMasksPerStep(l) * d +
                         RecurrentMasksPerStep(l) * u + std::max(d, u));
  } else if (l.dropout > 0) {
    // The masked input the model keeps, and the mask.
    c.caches += rows * d + 2 * batch * d;
  }
  return c;
}

// Whether GEMMs copy their operands (input rounding) or keep partial sums.
bool CopiesGemmOperands(const Profile& p) {
  return p.matmul != MatmulInputs::kExact || p.precision == Precision::kBf16 ||
         p.precision == Precision::kFp16 || p.sr ||
         p.gemm != GemmOrder::kBlocked;
}

int ReductionChunks(const Profile& p) {
  int chunks = 1;
  if (p.gemm == GemmOrder::kSplitK) chunks = std::max(chunks, p.split_k);
  if (p.thread_reduce) chunks = std::max(chunks, p.threads);
  return chunks;
}

std::string Largest(const JobMemory& m) {
  const std::pair<const char*, int64_t> parts[] = {
      {"weights", m.weights},
      {"optimizer state", m.optimizer},
      {"activation caches", m.activations},
      {"training and eval data", m.data},
      {"generated data before conversion", m.generator},
      {"eval outputs", m.outputs},
      {"per-epoch eval outputs", m.epoch_outputs},
      {"weight fingerprints", m.fingerprints},
      {"transfer buffers", m.transfer},
  };
  const auto* best = std::max_element(
      std::begin(parts), std::end(parts),
      [](const auto& a, const auto& b) { return a.second < b.second; });
  return absl::StrCat(best->first, " ", FormatBytes(best->second));
}

}  // namespace

int64_t JobMemory::total() const {
  // Two phases: making the data (generator output beside the converted
  // copies), then training and evaluating (everything else beside them).
  const double training = static_cast<double>(weights) + optimizer +
                          activations + outputs + epoch_outputs + fingerprints;
  return Bytes(static_cast<double>(data) + transfer +
               std::max<double>(training, generator));
}

JobMemory EstimateJobMemory(const JobSpec& spec, const Profile& profile,
                            int64_t train_samples, int64_t eval_samples) {
  const double value = profile.precision == Precision::kFp64 ? 8 : 4;
  const ModelSpec& m = spec.model;
  const double n = static_cast<double>(std::max<int64_t>(train_samples, 0));
  const double e = static_cast<double>(std::max<int64_t>(eval_samples, 0));
  const double batch =
      std::min<double>(std::max(spec.training.batch_size, 1), std::max(n, e));

  double params = 0, packed = 0, caches = 0, scratch = 0, gemm_out = 0;
  double acts = 0, max_grad = 0;
  double width = m.features;
  // A timestep mask: Masking's, or an embedding's with mask_zero.
  const bool timestep_mask =
      m.mask_value.has_value() ||
      (!m.layers.empty() && m.layers.front().kind == LayerKind::kEmbedding &&
       m.layers.front().mask_zero);
  bool sequence = true;
  for (size_t i = 0; i < m.layers.size(); ++i) {
    const LayerSpec& l = m.layers[i];
    const LayerCost c = CostOf(l, sequence, m.timesteps, width, batch);
    if (i > 0)
      max_grad = std::max(max_grad, (sequence ? m.timesteps : 1) * width);
    params += c.params;
    packed += c.packed;
    caches += c.caches;
    if (timestep_mask && sequence && IsRecurrentKind(l.kind)) {
      // Timestep mask (engine/layers/timestep_mask.h): the δh a skipped step
      // passes on, and the output gradient with zero_output_for_mask's
      // outputs zeroed, per direction.
      caches += (l.bidirectional ? 2 : 1) * batch * l.units *
                (1 + (l.return_sequences ? m.timesteps : 1));
    }
    scratch = std::max(scratch, c.scratch);
    gemm_out = std::max(gemm_out, c.gemm_out);
    if (IsRecurrentKind(l.kind)) sequence = l.return_sequences;
    width = LayerOutputUnits(l);
    acts += batch * (sequence ? m.timesteps : 1) * width;
  }
  const double in = static_cast<double>(m.timesteps) * m.features;
  const double out = (sequence ? m.timesteps : 1) * width;
  // The model's mask bytes (batch, T) and the Masking layer's output.
  const double mask_bytes = timestep_mask ? batch * m.timesteps : 0;
  if (m.mask_value.has_value()) caches += batch * in;
  const double units = width;
  const double steps_per_epoch =
      std::ceil(n / std::max(spec.training.batch_size, 1));
  const double steps = steps_per_epoch * spec.training.epochs;

  JobMemory r;
  // Parameters, gradients and the final weights in the result; fp64 runs
  // also narrow the parameters to float32 for the second fingerprint.
  r.weights =
      Bytes(value * (3 * params + packed) + (value == 8 ? 4 * params : 0));
  double slots = 0;
  const OptimizerSpec& o = spec.optimizer;
  switch (o.kind) {
    case OptimizerKind::kAdam:
      slots = o.amsgrad ? 3 : 2;
      break;
    case OptimizerKind::kSgd:
      slots = o.momentum != 0 ? 1 : 0;
      break;
    case OptimizerKind::kRmsprop:
      slots = 1 + (o.centered ? 1 : 0) + (o.momentum > 0 ? 1 : 0);
      break;
  }
  r.optimizer = Bytes(value * slots * params);
  double gemm = 0;
  if (CopiesGemmOperands(profile)) gemm += 4 * scratch;
  const int chunks = ReductionChunks(profile);
  if (chunks > 1) gemm += 8 * gemm_out * chunks;
  // Layer caches, the model's per-layer outputs and its two input-gradient
  // buffers, one batch of x, y and dy, and the shuffled sample order.
  // The 1.1: malloc's rounding and Eigen's packing blocks, measured at up
  // to 5% over the listed buffers.
  r.activations = Bytes(1.1 * (value * (caches + acts + 2 * batch * max_grad +
                                        batch * (in + 2 * out)) +
                               gemm + mask_bytes) +
                        8 * n);
  // x, y and eval x in run precision; the float32 generator output they
  // are converted from lives only before the model exists (see total()).
  r.data = Bytes(value * (n * (in + out) + e * in));
  r.generator = Bytes(4 * std::max(n, e) * (in + out));
  const bool states = !m.layers.empty() && m.layers.back().return_state;
  r.outputs = Bytes(value * (e * out + (states ? 2 * e * units : 0) + steps));
  if (spec.training.capture_epoch_outputs) {
    r.epoch_outputs = Bytes(value * e * out * spec.training.epochs);
  }
  r.fingerprints = Bytes(kFingerprintBytesPerStep * (steps + 1));
  r.transfer = Bytes(kTransferBytes);
  r.result = Bytes(static_cast<double>(r.outputs) + r.epoch_outputs +
                   r.fingerprints + value * params);
  return r;
}

std::string FormatBytes(int64_t bytes) {
  static constexpr const char* kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  double v = static_cast<double>(bytes) / 1024;
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return absl::StrFormat("%.1f %s", v, kUnits[u]);
}

absl::Status CheckJobMemory(const JobMemory& needed, int64_t limit_bytes,
                            absl::string_view limit_name) {
  if (limit_bytes <= 0 || needed.total() <= limit_bytes) {
    return absl::OkStatus();
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "the job needs about ", FormatBytes(needed.total()),
      " of memory (largest part: ", Largest(needed), "), above ", limit_name,
      " of ", FormatBytes(limit_bytes),
      "; nothing was started. Reduce data.eval_samples, model.input.timesteps "
      "or the layer units, or turn off capture of epoch outputs"));
}

int64_t AvailableMemoryBytes() {
  int64_t best = 0;
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  if (pages > 0 && page > 0) best = static_cast<int64_t>(pages) * page;
  for (const char* path : {"/sys/fs/cgroup/memory.max",
                           "/sys/fs/cgroup/memory/memory.limit_in_bytes"}) {
    std::ifstream f(path);
    std::string text;
    if (!(f >> text)) continue;
    int64_t limit = 0;
    // "max" (v2) or a huge number (v1) mean no limit.
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &limit) ||
        limit <= 0) {
      continue;
    }
    if (best == 0 || limit < best) best = limit;
  }
  return best;
}

}  // namespace driftscope
