#include "server/coordinator/result_check.h"

#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/core/ndarray.h"
#include "engine/io/init_weights.h"
#include "engine/numerics/profile.h"

namespace driftscope::coordinator {

namespace {

absl::Status Mismatch(absl::string_view what, absl::string_view expected,
                      absl::string_view got) {
  return absl::DataLossError(
      absl::StrCat("the worker's result does not match the job: ", what, " is ",
                   got, ", expected ", expected, " (not stored)"));
}

absl::Status CheckArray(absl::string_view name, const NdArray& a, DType dtype,
                        const std::vector<int64_t>& shape) {
  if (a.shape() != shape) {
    return Mismatch(absl::StrCat(name, "'s shape"), NumpyShapeText(shape),
                    NumpyShapeText(a.shape()));
  }
  if (a.dtype() != dtype) {
    return Mismatch(absl::StrCat(name, "'s dtype"), DTypeName(dtype),
                    DTypeName(a.dtype()));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckResultAgainstJob(const JobSpec& spec,
                                   absl::string_view requested_profile,
                                   const RunResult& result) {
  const std::string digest = SpecDigest(spec);
  if (result.spec_digest != digest) {
    return Mismatch("the spec digest", digest, result.spec_digest);
  }
  absl::StatusOr<Profile> asked = Profile::Parse(requested_profile);
  absl::StatusOr<Profile> ran = Profile::Parse(result.profile);
  if (!asked.ok()) return asked.status();
  if (!ran.ok()) {
    return Mismatch("the profile that ran", asked->ToString(),
                    absl::StrCat("\"", result.profile, "\" (unparsable)"));
  }
  Profile compared = *ran;
  if (asked->isa == Isa::kAuto) compared.isa = Isa::kAuto;
  if (compared.ToString() != asked->ToString()) {
    return Mismatch("the profile that ran", asked->ToString(), result.profile);
  }
  const DType dtype =
      asked->precision == Precision::kFp64 ? DType::kFloat64 : DType::kFloat32;
  const ModelSpec& m = spec.model;
  const int64_t eval_n = spec.data.eval_samples;
  const int units = ModelOutputUnits(m);
  const std::vector<int64_t> out_shape =
      ModelOutputIsSequence(m)
          ? std::vector<int64_t>{eval_n, m.timesteps, units}
          : std::vector<int64_t>{eval_n, units};
  if (absl::Status s = CheckArray("outputs", result.outputs, dtype, out_shape);
      !s.ok()) {
    return s;
  }
  const int64_t batch = spec.training.batch_size;
  const int64_t steps =
      (spec.data.samples + batch - 1) / batch * spec.training.epochs;
  if (result.steps != steps) {
    return Mismatch("the step count", absl::StrCat(steps),
                    absl::StrCat(result.steps));
  }
  if (absl::Status s = CheckArray("losses", result.losses, dtype, {steps});
      !s.ok()) {
    return s;
  }
  if (static_cast<int64_t>(result.fingerprints.size()) != steps + 1) {
    return Mismatch("the number of fingerprints", absl::StrCat(steps + 1),
                    absl::StrCat(result.fingerprints.size()));
  }
  for (size_t i = 0; i < result.fingerprints.size(); ++i) {
    if (result.fingerprints[i].step != static_cast<int64_t>(i)) {
      return Mismatch(absl::StrCat("fingerprint ", i, "'s step"),
                      absl::StrCat(i),
                      absl::StrCat(result.fingerprints[i].step));
    }
  }
  if (!result.epoch_outputs.empty()) {
    if (static_cast<int64_t>(result.epoch_outputs.size()) !=
        spec.training.epochs) {
      return Mismatch("the number of epoch outputs",
                      absl::StrCat(spec.training.epochs),
                      absl::StrCat(result.epoch_outputs.size()));
    }
    for (size_t e = 0; e < result.epoch_outputs.size(); ++e) {
      if (absl::Status s =
              CheckArray(absl::StrCat("epoch", e), result.epoch_outputs[e],
                         dtype, out_shape);
          !s.ok()) {
        return s;
      }
    }
  }
  if (!result.final_weights.empty()) {
    const std::vector<KerasWeight> layout = KerasWeightLayout(m);
    if (result.final_weights.size() != layout.size()) {
      return Mismatch("the number of final weights",
                      absl::StrCat(layout.size()),
                      absl::StrCat(result.final_weights.size()));
    }
    for (size_t i = 0; i < layout.size(); ++i) {
      const NamedArray& w = result.final_weights[i];
      if (w.name != layout[i].name) {
        return Mismatch(absl::StrCat("final weight ", i, "'s name"),
                        layout[i].name, w.name);
      }
      if (absl::Status s = CheckArray(w.name, w.array, dtype, layout[i].shape);
          !s.ok()) {
        return s;
      }
    }
  }
  for (const NamedArray& st : result.final_states) {
    if (absl::Status s = CheckArray(st.name, st.array, dtype, {eval_n, units});
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace driftscope::coordinator
