#include "proto/lib/spec_json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace driftscope {

namespace {

// protobuf's JSON parser reports "(path) detail" or "(path): detail", over
// several lines for syntax errors; we want one line, "path: detail", in
// our own words where protobuf's are obscure.
std::string JsonErrorLine(absl::string_view message) {
  absl::string_view line = message.substr(0, message.find('\n'));
  line = absl::StripAsciiWhitespace(line);
  std::string path;
  if (absl::ConsumePrefix(&line, "(")) {
    const size_t close = line.find(')');
    if (close != absl::string_view::npos) {
      path = std::string(line.substr(0, close));
      line = line.substr(close + 1);
      absl::ConsumePrefix(&line, ":");
      line = absl::StripLeadingAsciiWhitespace(line);
    }
  }
  std::string detail(line);
  constexpr absl::string_view kUnknown = ": Cannot find field.";
  constexpr absl::string_view kType = " for type type.googleapis.com/";
  if (absl::EndsWith(line, kUnknown)) {
    detail = absl::StrCat("unknown field \"",
                          line.substr(0, line.size() - kUnknown.size()), "\"");
  } else if (size_t at = line.find(kType); at != absl::string_view::npos) {
    const std::string type(line.substr(at + kType.size()));
    detail = std::string(line.substr(0, at));
    const google::protobuf::DescriptorPool* pool =
        google::protobuf::DescriptorPool::generated_pool();
    if (const auto* e = pool->FindEnumTypeByName(type); e != nullptr) {
      std::vector<std::string> names;
      for (int i = 0; i < e->value_count(); ++i) {
        if (e->value(i)->number() != 0) names.push_back(e->value(i)->name());
      }
      absl::StrAppend(&detail, "; valid: ", absl::StrJoin(names, ", "));
    } else if (type == "driftscope.v1.Initializer") {
      absl::StrAppend(&detail,
                      "; an initializer is an object, e.g. {\"name\": "
                      "\"glorot_uniform\"} or {\"random_uniform\": "
                      "{\"minval\": -0.05, \"maxval\": 0.05}}");
    } else if (pool->FindMessageTypeByName(type) != nullptr) {
      absl::StrAppend(&detail, "; expected a JSON object");
    }
  }
  if (path.empty()) return detail;
  return absl::StrCat(path, ": ", detail);
}

std::string Dirname(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return "";
  return path.substr(0, slash + 1);
}

}  // namespace

absl::StatusOr<JobSpec> ParseSpecJson(absl::string_view json,
                                      absl::string_view source,
                                      SuppliedDataPaths* supplied) {
  v1::JobSpec proto;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto parsed = google::protobuf::util::JsonStringToMessage(
      std::string(json), &proto, options);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": ", JsonErrorLine(std::string(parsed.message()))));
  }
  absl::StatusOr<JobSpec> spec = JobSpecFromProto(proto, supplied);
  if (!spec.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": ", spec.status().message()));
  }
  if (absl::Status s = ValidateJobSpec(*spec); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        source, ": ", EngineFieldToJsonPath(*spec, std::string(s.message()))));
  }
  return spec;
}

absl::StatusOr<JobSpec> LoadSpecJson(const std::string& path,
                                     SuppliedDataPaths* supplied) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return absl::NotFoundError(absl::StrCat(path, ": no such file"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot read: ", std::strerror(errno)));
  }
  if (S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": is a directory, expected a JSON spec file"));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot read: ", std::strerror(errno)));
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": cannot read: ", std::strerror(errno)));
  }
  absl::StatusOr<JobSpec> spec = ParseSpecJson(text.str(), path, supplied);
  if (spec.ok() && supplied != nullptr) {
    const std::string dir = Dirname(path);
    for (std::string* p : {&supplied->x, &supplied->y, &supplied->eval_x}) {
      if (!p->empty() && (*p)[0] != '/') *p = dir + *p;
    }
  }
  return spec;
}

std::string SpecToJson(const JobSpec& spec, bool indent) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = indent;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string json;
  // Cannot fail: the message is a well-formed v1.JobSpec.
  (void)google::protobuf::util::MessageToJsonString(JobSpecToProto(spec), &json,
                                                    options);
  return json;
}

}  // namespace driftscope
