// The drift report from arbitrary run records: AnalyzeRuns over outputs,
// losses, epoch snapshots and fingerprints made from the input (any float
// bits: NaN, ±Inf, denormals, ±0; shapes that differ; repeats; names that
// need quoting or escaping), then every form the report is written in. The
// report's JSON must parse as JSON and have one pair per environment but
// the reference; its CSV must have one row per pair and the header's
// number of cells in every row; the HTML page must escape every name.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/drift/analysis.h"
#include "engine/drift/report_io.h"
#include "engine/report/report_render.h"
#include "fuzz/fuzz_util.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

namespace driftscope::fuzz {
namespace {

// Names that must be quoted in CSV and escaped in HTML, besides plain ones.
constexpr const char* kNames[] = {
    "ref64", "fp32", "cpu-a", "<script>x</script>", "a,\"b\"\nc", "é"};
constexpr const char* kProfiles[] = {"fp64", "fp32", "bf16,isa=v3", ""};
constexpr const char* kDigests[] = {"d1", "d2"};
constexpr const char* kHashes[] = {"h0", "h1", "h2"};

NdArray Array(FuzzedDataProvider& in, DType dtype,
              const std::vector<int64_t>& shape) {
  NdArray a(dtype, shape);
  const std::string bytes =
      in.ConsumeBytesAsString(static_cast<size_t>(a.nbytes()));
  std::copy(bytes.begin(), bytes.end(), a.raw());
  return a;
}

// Rows of an RFC 4180 text, each as its number of cells.
std::vector<size_t> CsvRows(const std::string& csv) {
  std::vector<size_t> rows;
  size_t cells = 1;
  bool quoted = false;
  for (size_t i = 0; i < csv.size(); ++i) {
    const char c = csv[i];
    if (quoted) {
      if (c == '"' && i + 1 < csv.size() && csv[i + 1] == '"') {
        ++i;
      } else if (c == '"') {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      ++cells;
    } else if (c == '\n') {
      rows.push_back(cells);
      cells = 1;
    }
  }
  if (quoted) Fail("the CSV ends inside a quoted cell");
  return rows;
}

void Check(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const int64_t n = in.ConsumeIntegralInRange(1, 3);
  const int64_t t = in.ConsumeIntegralInRange(1, 4);
  const int64_t u = in.ConsumeIntegralInRange(1, 3);
  const bool sequences = in.ConsumeBool();
  std::vector<RunRecord> records(in.ConsumeIntegralInRange(1, 4));
  for (RunRecord& r : records) {
    r.name = in.PickValueInArray(kNames);
    r.profile = in.PickValueInArray(kProfiles);
    r.spec_digest = in.PickValueInArray(kDigests);
    r.repeat = in.ConsumeIntegralInRange(0, 2);
    const DType dtype = in.ConsumeBool() ? DType::kFloat32 : DType::kFloat64;
    std::vector<int64_t> shape =
        sequences ? std::vector<int64_t>{n, t, u} : std::vector<int64_t>{n, u};
    if (in.ConsumeIntegralInRange(0, 7) == 0) shape.back() += 1;
    r.outputs = Array(in, dtype, shape);
    r.losses = Array(in, DType::kFloat64, {in.ConsumeIntegralInRange(0, 4)});
    const int steps = in.ConsumeIntegralInRange(0, 3);
    for (int k = 0; k < steps; ++k) {
      r.fingerprints.push_back(in.PickValueInArray(kHashes));
      r.fingerprints_f32.push_back(in.PickValueInArray(kHashes));
    }
    const int epochs = in.ConsumeIntegralInRange(0, 2);
    for (int k = 0; k < epochs; ++k) {
      r.epoch_outputs.push_back(Array(in, dtype, shape));
    }
    r.environment["host"] = r.name;
  }
  AnalysisOptions options;
  if (in.ConsumeBool()) options.reference = in.PickValueInArray(kNames);
  options.atol = in.ConsumeFloatingPoint<double>();
  options.rtol = in.ConsumeFloatingPoint<double>();
  if (in.ConsumeBool()) options.max_ulp = in.ConsumeIntegral<uint64_t>();
  options.rel_floor = in.ConsumeFloatingPoint<double>();

  const absl::StatusOr<DriftReport> report = AnalyzeRuns(records, options);
  if (!report.ok()) {
    if (report.status().message().empty()) Fail("an error without a message");
    return;
  }
  const std::string json = ReportToJson(*report);
  google::protobuf::Value parsed;
  if (!google::protobuf::util::JsonStringToMessage(json, &parsed).ok()) {
    Fail("ReportToJson wrote text that is not JSON:\n" + json);
  }
  const auto& fields = parsed.struct_value().fields();
  const auto pairs = fields.find("pairs");
  if (pairs == fields.end() || pairs->second.list_value().values_size() !=
                                   static_cast<int>(report->pairs.size())) {
    Fail("the JSON's pairs are not the report's");
  }
  const std::vector<size_t> rows = CsvRows(ReportToCsv(*report));
  if (rows.size() != report->pairs.size() + 1) {
    Fail("the CSV has not one row per pair");
  }
  for (size_t cells : rows) {
    if (cells != rows[0]) Fail("a CSV row has not the header's cells");
  }
  (void)RenderTable(*report, records);
  const std::string html = RenderHtml(*report, records);
  if (absl::StrContains(html, "<script")) Fail("a name is not escaped in HTML");
}

}  // namespace
}  // namespace driftscope::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  driftscope::fuzz::Check(data, size);
  return 0;
}
