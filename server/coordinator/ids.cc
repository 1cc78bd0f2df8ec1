#include "server/coordinator/ids.h"

#include "absl/strings/str_cat.h"
#include "server/common/security.h"

namespace driftscope::coordinator {

std::string RandomId(absl::string_view prefix, int hex_digits) {
  return absl::StrCat(prefix, RandomHex(hex_digits));
}

}  // namespace driftscope::coordinator
