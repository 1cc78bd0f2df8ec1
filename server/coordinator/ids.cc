#include "server/coordinator/ids.h"

#include <random>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace driftscope::coordinator {

std::string RandomId(absl::string_view prefix, int hex_digits) {
  static absl::Mutex mu(absl::kConstInit);
  static std::random_device* device ABSL_GUARDED_BY(mu) =
      new std::random_device();
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id(prefix);
  absl::MutexLock lock(&mu);
  unsigned bits = 0;
  for (int i = 0; i < hex_digits; ++i) {
    if (i % 8 == 0) bits = (*device)();
    id.push_back(kHex[bits & 15]);
    bits >>= 4;
  }
  return id;
}

}  // namespace driftscope::coordinator
