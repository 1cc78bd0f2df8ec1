// Random identifiers for jobs and leases. Safe for concurrent use.
#ifndef DRIFTSCOPE_SERVER_COORDINATOR_IDS_H_
#define DRIFTSCOPE_SERVER_COORDINATOR_IDS_H_

#include <string>

#include "absl/strings/string_view.h"

namespace driftscope::coordinator {

// `prefix` followed by `hex_digits` random lowercase hex digits (from the
// operating system's random source).
std::string RandomId(absl::string_view prefix, int hex_digits);

}  // namespace driftscope::coordinator

#endif  // DRIFTSCOPE_SERVER_COORDINATOR_IDS_H_
