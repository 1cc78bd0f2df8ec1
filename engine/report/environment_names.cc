#include "engine/report/environment_names.h"

#include <map>
#include <set>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "engine/numerics/context.h"
#include "engine/numerics/profile.h"

namespace driftscope {

std::string ProfileLabel(absl::string_view requested, absl::string_view ran) {
  std::string text(requested);
  if (text.empty()) text = std::string(ran);
  if (text.empty()) return "default";
  if (!Profile::PresetKnobs(text).empty()) return text;  // already a preset
  absl::StatusOr<Profile> p = Profile::Parse(text);
  if (!p.ok()) return text;
  // Workers report profiles as they run them, isa=auto resolved ("fp32" on
  // an AVX-512 machine runs as "fp32,isa=x86-64-v4,threads=1"), so presets
  // are matched as they resolve on this machine first, then as written.
  struct PresetForms {
    std::vector<std::pair<std::string, std::string>> resolved, written;
  };
  static const PresetForms* forms = [] {
    auto* f = new PresetForms;
    for (const std::string& name : Profile::PresetNames()) {
      absl::StatusOr<Profile> q = Profile::Parse(name);
      if (!q.ok()) continue;
      f->written.emplace_back(q->ToString(), name);
      if (Context::Check(*q).ok()) {
        f->resolved.emplace_back(ResolveProfile(*q).ToString(), name);
      }
    }
    return f;
  }();
  const std::string canonical = p->ToString();
  for (const auto* list : {&forms->resolved, &forms->written}) {
    for (const auto& [form, name] : *list) {
      if (form == canonical) return name;
    }
  }
  return text;
}

std::vector<std::string> EnvironmentNames(const std::vector<RunPlace>& runs) {
  std::map<std::string, std::set<std::string>> workers_of;
  for (const RunPlace& run : runs) {
    workers_of[run.profile_label].insert(run.worker);
  }
  bool unique = true;
  for (const auto& [profile, workers] : workers_of) {
    unique = unique && workers.size() == 1;
  }
  std::vector<std::string> names;
  names.reserve(runs.size());
  for (const RunPlace& run : runs) {
    names.push_back(unique ? run.profile_label
                           : absl::StrCat(run.worker, "/", run.profile_label));
  }
  return names;
}

}  // namespace driftscope
