// Job spec JSON (ParseSpecJson, what `driftscope train/run/submit` read):
// the input is the file's text. A refusal is one line naming the source; an
// accepted spec written back with SpecToJson must parse again to the same
// computation (the same CanonicalText, hence the same digest).
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "engine/job/job_spec.h"
#include "fuzz/fuzz_util.h"
#include "google/protobuf/stubs/logging.h"
#include "proto/lib/spec_json.h"

namespace driftscope::fuzz {
namespace {

void Check(absl::string_view json) {
  SuppliedDataPaths supplied;
  const absl::StatusOr<JobSpec> spec =
      ParseSpecJson(json, "fuzz.json", &supplied);
  if (!spec.ok()) {
    const absl::string_view msg = spec.status().message();
    if (!absl::StartsWith(msg, "fuzz.json: ")) {
      Fail(absl::StrCat("an error that does not name the file: ", msg));
    }
    if (absl::StrContains(msg, "\n")) {
      Fail(absl::StrCat("an error of more than one line: ", msg));
    }
    return;
  }
  if (!ValidateJobSpec(*spec).ok()) Fail("accepted a spec that is not valid");
  const std::string written = SpecToJson(*spec);
  SuppliedDataPaths supplied_again;
  const absl::StatusOr<JobSpec> again =
      ParseSpecJson(written, "written.json", &supplied_again);
  if (!again.ok()) {
    Fail(absl::StrCat("SpecToJson wrote what ParseSpecJson refuses: ",
                      again.status().message(), "\n", written));
  }
  if (CanonicalText(*again) != CanonicalText(*spec)) {
    Fail(absl::StrCat("SpecToJson does not round-trip:\n", CanonicalText(*spec),
                      "\n", CanonicalText(*again)));
  }
}

}  // namespace
}  // namespace driftscope::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Refused UTF-8 would be logged by protobuf for every such input.
  google::protobuf::SetLogHandler(nullptr);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  driftscope::fuzz::Check(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
