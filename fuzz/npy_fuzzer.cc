// .npy reading: the input is a file's bytes. ParseNpy (from memory) and
// ReadNpy (from a file, header checked before the data is read) must agree
// on every input, an accepted array must hold exactly the file's data, and
// what SerializeNpy writes must read back to the same array.
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "engine/io/npy.h"
#include "fuzz/fuzz_util.h"

namespace driftscope::fuzz {
namespace {

bool SameArray(const NdArray& a, const NdArray& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 ||
          std::memcmp(a.raw(), b.raw(), static_cast<size_t>(a.nbytes())) == 0);
}

void Check(absl::string_view bytes) {
  const absl::StatusOr<NdArray> parsed = ParseNpy(bytes);
  const std::string path = ScratchDir() + "/input.npy";
  WriteFileOrDie(path, bytes);
  const absl::StatusOr<NdArray> read = ReadNpy(path);
  if (parsed.ok() != read.ok()) {
    Fail(absl::StrCat("ParseNpy says ", parsed.status().ToString(),
                      " but ReadNpy says ", read.status().ToString()));
  }
  if (!parsed.ok()) {
    if (parsed.status().message().empty()) Fail("an error without a message");
    if (read.status().message().find(path) == std::string::npos) {
      Fail("ReadNpy's error does not name the file");
    }
    return;
  }
  if (!SameArray(*parsed, *read))
    Fail("ParseNpy and ReadNpy read different arrays");
  // The data are the file's last bytes, as they are.
  if (static_cast<size_t>(parsed->nbytes()) > bytes.size() ||
      (parsed->nbytes() > 0 &&
       std::memcmp(parsed->raw(),
                   bytes.data() + bytes.size() - parsed->nbytes(),
                   static_cast<size_t>(parsed->nbytes())) != 0)) {
    Fail("the array's data are not the file's data");
  }
  const absl::StatusOr<NdArray> again = ParseNpy(SerializeNpy(*parsed));
  if (!again.ok())
    Fail("SerializeNpy wrote what ParseNpy refuses: " +
         again.status().ToString());
  if (!SameArray(*parsed, *again)) Fail("SerializeNpy does not round-trip");
}

}  // namespace
}  // namespace driftscope::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  driftscope::fuzz::Check(
      absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
