#include "engine/data/synthetic.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "engine/rng/philox.h"

// Bit-identical data need every a·b + c below rounded twice: the engine is
// built with -ffp-contract=off (CMakeLists.txt), which this file relies on.

namespace driftscope {

namespace {

constexpr double kTwoPi = 6.283185307179586;  // nearest double to 2π
constexpr int kSineTerms = 12;                // up to x^25/25!: < 1e-21 rel

// Uniform in [0,1) with 32 random bits; exact in double.
double Uniform(PhiloxStream& s) {
  return static_cast<double>(s.NextUint32()) * 0x1p-32;
}

// Irwin–Hall(12) − 6: mean 0, variance 1, summed in a fixed order.
double StandardNoise(PhiloxStream& s) {
  double sum = 0;
  for (int i = 0; i < 12; ++i) sum += Uniform(s);
  return sum - 6.0;
}

struct Shape {
  int64_t n;
  int t, f, u;
  bool sequence;
};

// Writes target value `v` of (sample, step, unit) if the output keeps it.
void PutTarget(const Shape& s, float* y, int64_t n, int t, int u, double v) {
  if (s.sequence) {
    y[(n * s.t + t) * s.u + u] = static_cast<float>(v);
  } else if (t == s.t - 1) {
    y[n * s.u + u] = static_cast<float>(v);
  }
}

void GenerateSine(const Shape& s, double noise, PhiloxStream& rng, float* x,
                  float* y) {
  // comp[(t·F + f)·2 + k]: component k of feature f at step t, t ∈ [0, T].
  std::vector<double> comp(static_cast<size_t>(s.t + 1) * s.f * 2);
  std::vector<double> param(static_cast<size_t>(s.f) * 6);
  for (int64_t n = 0; n < s.n; ++n) {
    for (int f = 0; f < s.f; ++f) {
      double* p = &param[f * 6];
      p[0] = 0.5 + 0.5 * Uniform(rng);    // a0
      p[1] = 0.02 + 0.06 * Uniform(rng);  // ν0
      p[2] = Uniform(rng);                // ψ0
      p[3] = 0.1 + 0.4 * Uniform(rng);    // a1
      p[4] = 0.1 + 0.15 * Uniform(rng);   // ν1
      p[5] = Uniform(rng);                // ψ1
    }
    for (int t = 0; t <= s.t; ++t) {
      for (int f = 0; f < s.f; ++f) {
        const double* p = &param[f * 6];
        double* c = &comp[(static_cast<size_t>(t) * s.f + f) * 2];
        c[0] = p[0] * SinTurns(p[1] * t + p[2]);
        c[1] = p[3] * SinTurns(p[4] * t + p[5]);
      }
    }
    for (int t = 0; t < s.t; ++t) {
      for (int f = 0; f < s.f; ++f) {
        const double* c = &comp[(static_cast<size_t>(t) * s.f + f) * 2];
        const double e = StandardNoise(rng);
        x[(n * s.t + t) * s.f + f] =
            static_cast<float>((c[0] + c[1]) + noise * e);
      }
      for (int u = 0; u < s.u; ++u) {
        const int f = (u / 3) % s.f;
        const double* c = &comp[(static_cast<size_t>(t + 1) * s.f + f) * 2];
        const int m = u % 3;
        PutTarget(s, y, n, t, u, m == 0 ? c[0] + c[1] : m == 1 ? c[0] : c[1]);
      }
    }
  }
}

void GenerateRandomWalk(const Shape& s, PhiloxStream& rng, float* x, float* y) {
  for (int64_t n = 0; n < s.n; ++n) {
    float* xn = x + n * s.t * s.f;
    for (int f = 0; f < s.f; ++f) {
      xn[f] = static_cast<float>(2.0 * Uniform(rng) - 1.0);
    }
    for (int t = 1; t < s.t; ++t) {
      for (int f = 0; f < s.f; ++f) {
        const double prev = xn[(t - 1) * s.f + f];
        xn[t * s.f + f] = static_cast<float>(prev + 0.1 * StandardNoise(rng));
      }
    }
    for (int t = 0; t < s.t; ++t) {
      for (int u = 0; u < s.u; ++u) {
        const int f = u % s.f;
        const int w = 1 + (u / s.f) % 4;
        const int first = std::max(0, t - w + 1);
        double sum = 0;
        for (int j = first; j <= t; ++j) sum += xn[j * s.f + f];
        PutTarget(s, y, n, t, u, sum / (t - first + 1));
      }
    }
  }
}

void GenerateDelayedCopy(const Shape& s, int delay, PhiloxStream& rng, float* x,
                         float* y) {
  for (int64_t n = 0; n < s.n; ++n) {
    float* xn = x + n * s.t * s.f;
    for (int64_t i = 0; i < int64_t{s.t} * s.f; ++i) {
      xn[i] = static_cast<float>(2.0 * Uniform(rng) - 1.0);
    }
    for (int t = 0; t < s.t; ++t) {
      for (int u = 0; u < s.u; ++u) {
        const int f = u % s.f;
        const int d = delay + (u / s.f) % 4;
        PutTarget(s, y, n, t, u, t >= d ? xn[(t - d) * s.f + f] : 0.0);
      }
    }
  }
}

// Token ids uniform in [0, vocab): the high 32 bits of word·vocab, exact
// integer arithmetic. The id is stored as a float32 value (exact below 2^24,
// which ValidateJobSpec guarantees for input_dim).
void GenerateTokens(const Shape& s, int64_t vocab, PhiloxStream& rng, float* x,
                    float* y) {
  std::vector<double> level(static_cast<size_t>(s.t));
  for (int64_t n = 0; n < s.n; ++n) {
    float* xn = x + n * s.t;
    for (int t = 0; t < s.t; ++t) {
      const int64_t id = static_cast<int64_t>(
          (uint64_t{rng.NextUint32()} * static_cast<uint64_t>(vocab)) >> 32);
      xn[t] = static_cast<float>(id);
      level[t] = vocab > 1 ? 2.0 * static_cast<double>(id) /
                                     static_cast<double>(vocab - 1) -
                                 1.0
                           : 0.0;
    }
    for (int t = 0; t < s.t; ++t) {
      for (int u = 0; u < s.u; ++u) {
        const int w = 1 + u % 4;
        const int first = std::max(0, t - w + 1);
        double sum = 0;
        for (int j = first; j <= t; ++j) sum += level[j];
        PutTarget(s, y, n, t, u, sum / (t - first + 1));
      }
    }
  }
}

}  // namespace

double SinTurns(double turns) {
  // x − floor(x) is exact only for x ≥ 0, hence the odd symmetry first.
  if (turns < 0) return -SinTurns(-turns);
  // Exact reduction to r ∈ [−1/4, 1/4] turns: every step below is exact
  // (a fraction of a double, or a Sterbenz subtraction).
  double r = turns - std::floor(turns);  // [0, 1)
  if (r >= 0.5) r -= 1.0;                // [−1/2, 1/2)
  if (r > 0.25) {
    r = 0.5 - r;  // sin(π − θ) = sin θ
  } else if (r < -0.25) {
    r = -0.5 - r;
  }
  const double x = r * kTwoPi;  // |x| ≤ π/2
  const double x2 = x * x;
  // sin x = x(1 − x²/(2·3)(1 − x²/(4·5)(1 − …))), innermost term first.
  double p = 1.0;
  for (int k = kSineTerms; k >= 1; --k) {
    p = 1.0 - x2 * p / static_cast<double>((2 * k) * (2 * k + 1));
  }
  return x * p;
}

absl::StatusOr<Dataset> GenerateDataset(const JobSpec& spec, DataSplit split) {
  const ModelSpec& m = spec.model;
  const int64_t samples =
      split == DataSplit::kTrain ? spec.data.samples : spec.data.eval_samples;
  const char* field = split == DataSplit::kTrain
                          ? "data.synthetic.samples"
                          : "data.synthetic.eval_samples";
  if (samples < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be at least 1, got ", samples));
  }
  if (m.timesteps < 1 || m.features < 1 || m.layers.empty() ||
      ModelOutputUnits(m) < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data: the model needs timesteps, features, layers and output units "
        "≥ 1, got timesteps ",
        m.timesteps, ", features ", m.features, ", ", m.layers.size(),
        " layers"));
  }
  const bool embedding = m.layers.front().kind == LayerKind::kEmbedding;
  if (embedding != (spec.data.generator == DataSpec::Generator::kTokens)) {
    return absl::InvalidArgumentError(
        embedding ? "data.synthetic.generator must be TOKENS when "
                    "model.layers[0] is an embedding (its input is token ids)"
                  : "data.synthetic.generator TOKENS needs an embedding as "
                    "model.layers[0]");
  }
  if (embedding && (m.features != 1 || m.layers.front().input_dim < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "data: a TOKENS model needs features 1 and input_dim >= 1, got "
        "features ",
        m.features, ", input_dim ", m.layers.front().input_dim));
  }
  const Shape s{samples, m.timesteps, m.features, ModelOutputUnits(m),
                ModelOutputIsSequence(m)};
  Dataset data;
  data.x = NdArray(DType::kFloat32, {s.n, s.t, s.f});
  data.y = s.sequence ? NdArray(DType::kFloat32, {s.n, s.t, s.u})
                      : NdArray(DType::kFloat32, {s.n, s.u});
  PhiloxStream rng(spec.seed, split == DataSplit::kTrain ? streams::kTrainData
                                                         : streams::kEvalData);
  float* x = data.x.data<float>();
  float* y = data.y.data<float>();
  switch (spec.data.generator) {
    case DataSpec::Generator::kSine:
      if (!std::isfinite(spec.data.noise) || spec.data.noise < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("data.synthetic.noise must be a finite number >= 0, "
                         "got ",
                         spec.data.noise));
      }
      GenerateSine(s, spec.data.noise, rng, x, y);
      break;
    case DataSpec::Generator::kRandomWalk:
      GenerateRandomWalk(s, rng, x, y);
      break;
    case DataSpec::Generator::kDelayedCopy:
      if (spec.data.delay < 0 || spec.data.delay >= s.t) {
        return absl::InvalidArgumentError(
            absl::StrCat("data.synthetic.delay must be in [0, ", s.t - 1,
                         "], got ", spec.data.delay));
      }
      GenerateDelayedCopy(s, spec.data.delay, rng, x, y);
      break;
    case DataSpec::Generator::kTokens:
      GenerateTokens(s, m.layers.front().input_dim, rng, x, y);
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("data.synthetic.generator is not a known generator, "
                       "got ",
                       static_cast<int>(spec.data.generator)));
  }
  if (spec.data.pad_tail_max > 0 && m.mask_value.has_value()) {
    PhiloxStream pad(spec.seed, split == DataSplit::kTrain
                                    ? streams::kTrainPadding
                                    : streams::kEvalPadding);
    const float value = static_cast<float>(*m.mask_value);
    const uint64_t choices = static_cast<uint64_t>(spec.data.pad_tail_max) + 1;
    for (int64_t n = 0; n < s.n; ++n) {
      // p = ⌊u·choices⌋ with u = word·2⁻³²: exact integer arithmetic.
      const int64_t p =
          static_cast<int64_t>((uint64_t{pad.NextUint32()} * choices) >> 32);
      for (int64_t t = s.t - p; t < s.t; ++t)
        for (int64_t f = 0; f < s.f; ++f) x[(n * s.t + t) * s.f + f] = value;
    }
  }
  return data;
}

}  // namespace driftscope
