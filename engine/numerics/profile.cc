#include "engine/numerics/profile.h"

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace driftscope {

namespace {

constexpr int kMaxThreads = 256;

struct Preset {
  const char* name;
  const char* knobs;
};
constexpr Preset kPresets[] = {
    {"ref64", "fp64"},
    {"fp32", "fp32"},
};

std::string ValidChoices() {
  return absl::StrCat("presets: ", absl::StrJoin(Profile::PresetNames(), ", "),
                      "; or a knob string fp64|fp32[,threads=N]");
}

absl::StatusOr<Profile> ParseKnobs(absl::string_view text) {
  std::vector<absl::string_view> parts = absl::StrSplit(text, ',');
  Profile profile;
  if (parts.empty() || parts[0].empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("profile is empty; valid: ", ValidChoices()));
  }
  if (parts[0] == "fp64") {
    profile.precision = Precision::kFp64;
  } else if (parts[0] == "fp32") {
    profile.precision = Precision::kFp32;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("profile '", text, "': unknown precision or preset '",
                     parts[0], "'; valid: ", ValidChoices()));
  }
  for (size_t i = 1; i < parts.size(); ++i) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(parts[i], absl::MaxSplits('=', 1));
    if (kv.first == "threads") {
      int n = 0;
      if (!absl::SimpleAtoi(kv.second, &n) || n < 1 || n > kMaxThreads) {
        return absl::InvalidArgumentError(absl::StrCat(
            "profile '", text, "': threads must be an integer in [1, ",
            kMaxThreads, "], got '", kv.second, "'"));
      }
      profile.threads = n;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("profile '", text, "': unknown knob '", kv.first,
                       "'; valid: threads"));
    }
  }
  return profile;
}

}  // namespace

std::vector<std::string> Profile::PresetNames() {
  std::vector<std::string> names;
  for (const Preset& p : kPresets) names.push_back(p.name);
  return names;
}

std::string Profile::ToString() const {
  return absl::StrCat(precision == Precision::kFp64 ? "fp64" : "fp32",
                      ",threads=", threads);
}

absl::StatusOr<Profile> Profile::Parse(absl::string_view text) {
  for (const Preset& p : kPresets) {
    if (text == p.name) {
      absl::StatusOr<Profile> parsed = ParseKnobs(p.knobs);
      if (parsed.ok()) parsed->preset = p.name;
      return parsed;
    }
  }
  return ParseKnobs(text);
}

}  // namespace driftscope
