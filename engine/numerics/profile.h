// Profile: the numerics knobs of one environment (DESIGN §6).
//
// A Profile is a plain value. Parse() turns a preset name or a knob string
// ("fp32,threads=2") into one; ToString() gives the canonical string that is
// reported as "the profile that actually ran". Thread-compatible.
#ifndef DRIFTSCOPE_ENGINE_NUMERICS_PROFILE_H_
#define DRIFTSCOPE_ENGINE_NUMERICS_PROFILE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace driftscope {

enum class Precision { kFp64, kFp32 };

struct Profile {
  // The preset this profile came from, or "" for a custom knob string.
  std::string preset;
  Precision precision = Precision::kFp32;
  // Worker threads for one run. Results never depend on it (fixed tiling).
  int threads = 1;

  // Canonical knob string, e.g. "fp64,threads=1". Parse(ToString()) == *this.
  std::string ToString() const;
  // Accepts a preset ("ref64", "fp32") or "PRECISION[,key=value...]".
  // Unknown keys or values give InvalidArgument listing the valid ones.
  static absl::StatusOr<Profile> Parse(absl::string_view text);
  static std::vector<std::string> PresetNames();

  friend bool operator==(const Profile& a, const Profile& b) {
    return a.precision == b.precision && a.threads == b.threads;
  }
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_NUMERICS_PROFILE_H_
