#include "engine/init/initializers.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/rng/philox.h"

namespace driftscope {
namespace {

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = absl::StrCat("(", absl::StrJoin(shape, ", "));
  if (shape.size() == 1) s += ",";
  return s + ")";
}

// Keras compute_fans (spec §4.1).
void ComputeFans(const std::vector<int64_t>& shape, double* fan_in,
                 double* fan_out) {
  if (shape.empty()) {
    *fan_in = *fan_out = 1;
  } else if (shape.size() == 1) {
    *fan_in = *fan_out = static_cast<double>(shape[0]);
  } else {
    int64_t receptive = 1;
    for (size_t i = 0; i + 2 < shape.size(); ++i) receptive *= shape[i];
    *fan_in = static_cast<double>(shape[shape.size() - 2] * receptive);
    *fan_out = static_cast<double>(shape.back() * receptive);
  }
}

// Reduced QR of the m×n matrix a (m ≥ n, stored column-major so that the
// reflector loops run over contiguous memory) by Householder reflections in
// double, every sum in index order. Returns Q (m×n, column-major) and
// diag(R). The reflector sign convention does not matter to callers: they
// normalise with sign(diag R), which makes Q unique.
void HouseholderQr(int64_t m, int64_t n, std::vector<double> a,
                   std::vector<double>* q, std::vector<double>* r_diag) {
  // Reflector k is stored in place of column k's entries k..m-1.
  std::vector<double> v_norm2(n, 0.0);
  r_diag->assign(n, 0.0);
  for (int64_t k = 0; k < n; ++k) {
    double* v = a.data() + k * m + k;  // length m - k
    const int64_t len = m - k;
    double norm2 = 0.0;
    for (int64_t i = 0; i < len; ++i) norm2 += v[i] * v[i];
    const double norm = std::sqrt(norm2);
    const double alpha = v[0];
    // Reflect onto −sign(alpha)·‖x‖ e1: no cancellation in v[0].
    const double beta = alpha >= 0 ? -norm : norm;
    v[0] = alpha - beta;
    double vv = 0.0;
    for (int64_t i = 0; i < len; ++i) vv += v[i] * v[i];
    v_norm2[k] = vv;
    (*r_diag)[k] = beta;
    if (vv == 0.0) continue;  // column already zero below the diagonal
    for (int64_t j = k + 1; j < n; ++j) {
      double* col = a.data() + j * m + k;
      double s = 0.0;
      for (int64_t i = 0; i < len; ++i) s += v[i] * col[i];
      const double f = 2.0 * s / vv;
      for (int64_t i = 0; i < len; ++i) col[i] -= f * v[i];
    }
  }
  // Q = H_0 · … · H_{n-1} · I[:, :n], applied right to left.
  q->assign(static_cast<size_t>(m * n), 0.0);
  for (int64_t j = 0; j < n; ++j) (*q)[j * m + j] = 1.0;
  for (int64_t k = n - 1; k >= 0; --k) {
    const double* v = a.data() + k * m + k;
    const int64_t len = m - k;
    const double vv = v_norm2[k];
    if (vv == 0.0) continue;
    for (int64_t j = 0; j < n; ++j) {
      double* col = q->data() + j * m + k;
      double s = 0.0;
      for (int64_t i = 0; i < len; ++i) s += v[i] * col[i];
      const double f = 2.0 * s / vv;
      for (int64_t i = 0; i < len; ++i) col[i] -= f * v[i];
    }
  }
}

absl::Status Orthogonal(const std::vector<int64_t>& shape, double gain,
                        uint64_t seed, uint64_t stream, float* out) {
  if (shape.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "orthogonal initializer needs a tensor of rank >= 2, got shape ",
        ShapeText(shape)));
  }
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) rows *= shape[i];
  const int64_t cols = shape.back();
  const int64_t m = std::max(rows, cols), n = std::min(rows, cols);
  if (n == 0) return absl::OkStatus();
  // The draws fill the (m, n) matrix row-major, as TF does.
  std::vector<float> draws(static_cast<size_t>(m * n));
  StatelessNormal(seed, stream, m * n, draws.data());
  std::vector<double> a(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) a[j * m + i] = draws[i * n + j];
  }
  std::vector<double> q, r_diag;
  HouseholderQr(m, n, std::move(a), &q, &r_diag);
  for (int64_t j = 0; j < n; ++j) {
    const double sign = r_diag[j] > 0 ? 1.0 : (r_diag[j] < 0 ? -1.0 : 0.0);
    for (int64_t i = 0; i < m; ++i) {
      const double v = gain * (q[j * m + i] * sign);
      // Q is (m, n); when rows < cols the tensor is Qᵀ.
      const int64_t dst = rows >= cols ? i * n + j : j * m + i;
      out[dst] = static_cast<float>(v);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status InitializeTensor(const InitializerSpec& init,
                              const std::vector<int64_t>& shape, uint64_t seed,
                              uint64_t stream, float* out) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "initializer shape ", ShapeText(shape), " has a negative dimension"));
    }
    n *= d;
  }
  using Kind = InitializerSpec::Kind;
  switch (init.kind) {
    case Kind::kZeros:
    case Kind::kOnes: {
      const float v = init.kind == Kind::kOnes ? 1.0f : 0.0f;
      for (int64_t i = 0; i < n; ++i) out[i] = v;
      return absl::OkStatus();
    }
    case Kind::kGlorotUniform: {
      double fan_in, fan_out;
      ComputeFans(shape, &fan_in, &fan_out);
      const double scale = 1.0 / std::max(1.0, (fan_in + fan_out) / 2.0);
      const float limit = static_cast<float>(std::sqrt(3.0 * scale));
      const float lo = -limit;
      const float range = limit - lo;
      StatelessUniform(seed, stream, n, out);
      for (int64_t i = 0; i < n; ++i) out[i] = out[i] * range + lo;
      return absl::OkStatus();
    }
    case Kind::kRandomUniform: {
      const float lo = static_cast<float>(init.minval);
      const float range = static_cast<float>(init.maxval) - lo;
      StatelessUniform(seed, stream, n, out);
      for (int64_t i = 0; i < n; ++i) out[i] = out[i] * range + lo;
      return absl::OkStatus();
    }
    case Kind::kRandomNormal: {
      const float mean = static_cast<float>(init.mean);
      const float stddev = static_cast<float>(init.stddev);
      StatelessNormal(seed, stream, n, out);
      for (int64_t i = 0; i < n; ++i) out[i] = out[i] * stddev + mean;
      return absl::OkStatus();
    }
    case Kind::kOrthogonal:
      return Orthogonal(shape, init.gain, seed, stream, out);
  }
  return absl::InvalidArgumentError("unknown initializer kind");
}

namespace {

const char* KindName(LayerKind kind) {
  switch (kind) {
    case LayerKind::kLstm:
      return "LSTM";
    case LayerKind::kGru:
      return "GRU";
    case LayerKind::kSimpleRnn:
      return "SimpleRNN";
    case LayerKind::kDense:
      return "Dense";
    case LayerKind::kEmbedding:
      return "Embedding";
  }
  return "?";
}

}  // namespace

absl::Status InitializeLayer(const LayerSpec& spec,
                             const std::vector<std::vector<int64_t>>& shapes,
                             uint64_t seed, int layer_index,
                             std::vector<float>* out) {
  LayerSeeds seeds;
  for (size_t w = 0; w < shapes.size(); ++w) {
    seeds.weights.push_back(
        {seed, streams::Init(layer_index, static_cast<int>(w))});
  }
  return InitializeLayer(spec, shapes, seeds, layer_index, out);
}

absl::Status InitializeLayer(const LayerSpec& spec,
                             const std::vector<std::vector<int64_t>>& shapes,
                             const LayerSeeds& seeds, int layer_index,
                             std::vector<float>* out) {
  if (spec.bidirectional) {
    // The forward copy's weights, then the backward copy's, each half of
    // the shapes and seeds.
    const size_t half = shapes.size() / 2;
    if (shapes.size() != 2 * half || seeds.weights.size() != shapes.size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "layer ", layer_index, " (bidirectional): got ", shapes.size(),
          " weight shapes and ", seeds.weights.size(), " seeds"));
    }
    out->clear();
    for (const bool backward : {false, true}) {
      const size_t from = backward ? half : 0;
      const std::vector<std::vector<int64_t>> part(
          shapes.begin() + from, shapes.begin() + from + half);
      LayerSeeds part_seeds;
      part_seeds.weights.assign(seeds.weights.begin() + from,
                                seeds.weights.begin() + from + half);
      std::vector<float> values;
      if (absl::Status s = InitializeLayer(DirectionSpec(spec, backward), part,
                                           part_seeds, layer_index, &values);
          !s.ok()) {
        return s;
      }
      out->insert(out->end(), values.begin(), values.end());
    }
    return absl::OkStatus();
  }
  const int64_t u = spec.units;
  const std::string where = absl::StrCat(
      "layer ", layer_index, " (", KindName(spec.kind), ", units=", u, ")");
  if (spec.kind == LayerKind::kEmbedding) {
    // One weight, "embeddings" (input_dim, output_dim), drawn by the
    // embeddings_initializer (kernel_initializer) like any 2-D weight.
    const std::vector<int64_t> want = {spec.input_dim, u};
    if (shapes.size() != 1 || shapes[0] != want || seeds.weights.size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": expected one weight of shape ",
                       ShapeText(want), " and one seed, got ", shapes.size(),
                       " shapes and ", seeds.weights.size(), " seeds"));
    }
    out->assign(static_cast<size_t>(spec.input_dim * u), 0.0f);
    absl::Status s =
        InitializeTensor(spec.kernel_initializer, want, seeds.weights[0].s0,
                         seeds.weights[0].s1, out->data());
    if (!s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat(where, ": embeddings: ", s.message()));
    }
    return absl::OkStatus();
  }
  const bool rnn = IsRecurrentKind(spec.kind);
  const int64_t gates = spec.kind == LayerKind::kLstm  ? 4
                        : spec.kind == LayerKind::kGru ? 3
                                                       : 1;
  std::vector<const InitializerSpec*> inits = {&spec.kernel_initializer};
  if (rnn) inits.push_back(&spec.recurrent_initializer);
  if (spec.use_bias) inits.push_back(&spec.bias_initializer);
  if (shapes.size() != inits.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": got ", shapes.size(),
                     " weight shapes, expected ", inits.size()));
  }
  if (seeds.weights.size() != inits.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": got ", seeds.weights.size(),
                     " weight seeds, expected ", inits.size()));
  }
  // Expected Keras shapes; the kernel's input dimension is free.
  std::vector<std::vector<int64_t>> expected;
  const int64_t input_dim = shapes[0].size() == 2 ? shapes[0][0] : int64_t{-1};
  expected.push_back({input_dim, gates * u});
  if (rnn) expected.push_back({u, gates * u});
  if (spec.use_bias) {
    if (spec.kind == LayerKind::kGru && spec.reset_after) {
      expected.push_back({2, gates * u});
    } else {
      expected.push_back({gates * u});
    }
  }
  for (size_t w = 0; w < shapes.size(); ++w) {
    if (shapes[w] != expected[w] || input_dim < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": weight ", w, " has shape ",
                       ShapeText(shapes[w]), ", expected ",
                       w == 0 ? absl::StrCat("(input_dim, ", gates * u, ")")
                              : ShapeText(expected[w])));
    }
  }
  int64_t total = 0;
  for (const auto& s : shapes) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    total += n;
  }
  out->assign(static_cast<size_t>(total), 0.0f);
  float* dst = out->data();
  for (size_t w = 0; w < shapes.size(); ++w) {
    const uint64_t seed = seeds.weights[w].s0;
    const uint64_t stream = seeds.weights[w].s1;
    const bool is_bias = spec.use_bias && w + 1 == shapes.size();
    if (is_bias && spec.kind == LayerKind::kLstm && spec.unit_forget_bias) {
      // Keras LSTMCell.build calls the bias initializer twice, with shapes
      // (U,) and (2U,), and the same seed: both pieces are drawn from the
      // start of the same stream (so their first U values coincide for a
      // random initializer, exactly as in Keras).
      absl::Status s = InitializeTensor(*inits[w], {u}, seed, stream, dst);
      for (int64_t i = 0; i < u; ++i) dst[u + i] = 1.0f;
      if (s.ok()) {
        s = InitializeTensor(*inits[w], {2 * u}, seed, stream, dst + 2 * u);
      }
      if (!s.ok()) {
        return absl::Status(
            s.code(), absl::StrCat(where, ": weight ", w, ": ", s.message()));
      }
      dst += 4 * u;
      continue;
    }
    absl::Status s = InitializeTensor(*inits[w], shapes[w], seed, stream, dst);
    if (!s.ok()) {
      return absl::Status(
          s.code(), absl::StrCat(where, ": weight ", w, ": ", s.message()));
    }
    int64_t n = 1;
    for (int64_t d : shapes[w]) n *= d;
    dst += n;
  }
  return absl::OkStatus();
}

}  // namespace driftscope
