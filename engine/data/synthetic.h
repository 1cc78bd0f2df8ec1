// Seeded synthetic data sets for a JobSpec: inputs x (N,T,F) and targets
// shaped like the model output, (N,T,U) for sequence outputs, (N,U) else.
//
// Every value is a float32 (an fp64 run widens it exactly), so ref64 and fp32
// runs train on identical data. Randomness comes from
// PhiloxStream(spec.seed, streams::kTrainData or kEvalData) with hand-written
// integer→double conversion (u = word · 2⁻³²), and generation uses only
// correctly rounded IEEE operations (+ − × ÷, floor): sines come from a
// fixed-order Taylor polynomial after exact range reduction, never libm. The
// data are therefore bit-identical on every platform and compiler.
//
// Generators (t = 0..T−1 indexes steps; f a feature; u a target unit):
//  SINE — per (sample, feature) a slow and a fast sine component,
//    s_f(t) = a0·sin(2π(ν0·t + ψ0)) + a1·sin(2π(ν1·t + ψ1)), with
//    a0 ∈ [0.5,1), ν0 ∈ [0.02,0.08) cycles/step, a1 ∈ [0.1,0.5),
//    ν1 ∈ [0.1,0.25), phases ψ ∈ [0,1);
//    x_f(t) = s_f(t) + noise·ε, ε = (sum of 12 uniforms) − 6 (mean 0, sd 1).
//    Target unit u forecasts the clean signal one step ahead, of feature
//    f = (u/3) mod F: the whole signal (u mod 3 = 0), its slow component
//    (u mod 3 = 1) or its fast component (u mod 3 = 2). So units differ
//    even when F = 1, and the task needs memory (phase and frequency).
//  RANDOM_WALK — x_f(0) = 2u−1, x_f(t) = x_f(t−1) + 0.1·ε.
//    Target unit u is the moving average of feature f = u mod F over the
//    last w = 1 + (u/F) mod 4 stored inputs (fewer at the start).
//  DELAYED_COPY — x_f(t) = 2u−1 uniform in [−1,1).
//    Target unit u copies feature f = u mod F from d = delay + (u/F) mod 4
//    steps earlier: y_u(t) = x_f(t−d), 0 when t < d.
//  TOKENS — for a model whose first layer is an Embedding (F = 1): token
//    ids x(t) uniform in [0, V), V = that layer's input_dim, stored as
//    float32 values (exact: V ≤ 2^24); id = (word·V) >> 32 for one 32-bit
//    Philox word per token. With level s(t) = 2·x(t)/(V−1) − 1 (0 when
//    V = 1), target unit u is the moving average of s over the last
//    w = 1 + u mod 4 tokens (fewer at the start).
// Vector outputs (N,U) take the sequence target at the last step t = T−1.
// Padding (data.synthetic.pad_tail_max = P > 0, with Masking): after
// generation, sample n's last p_n steps hold mask_value (as float32) in
// every feature, p_n = ⌊w·(P+1)/2³²⌋ for the n-th word w of
// PhiloxStream(seed, kTrainPadding or kEvalPadding); targets are kept (the
// masked loss skips padded steps of sequence targets).
// Pure functions; safe to call concurrently.
#ifndef DRIFTSCOPE_ENGINE_DATA_SYNTHETIC_H_
#define DRIFTSCOPE_ENGINE_DATA_SYNTHETIC_H_

#include "absl/status/statusor.h"
#include "engine/core/ndarray.h"
#include "engine/job/job_spec.h"

namespace driftscope {

enum class DataSplit { kTrain, kEval };

struct Dataset {
  NdArray x;  // float32 (N, T, F)
  NdArray y;  // float32, model output shape for N samples
};

// N = spec.data.samples (train) or spec.data.eval_samples (eval). Checks the
// fields it reads (InvalidArgument naming them); call ValidateJobSpec for
// the rest.
absl::StatusOr<Dataset> GenerateDataset(const JobSpec& spec, DataSplit split);

// sin(2π·turns), accurate to about 1 ulp of double for any finite input,
// from correctly rounded operations only (see above). Exposed for tests.
double SinTurns(double turns);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_DATA_SYNTHETIC_H_
