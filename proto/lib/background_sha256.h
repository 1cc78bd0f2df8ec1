// BackgroundSha256: the SHA-256 of a growing byte range, computed on its own
// thread while the caller goes on with other work.
//
// Streaming a large tensor hashes every byte on both ends; SHA-256 is the
// slowest per-byte step there (about 2 GB/s with SHA-NI, one core), so the
// sender hashes the tensor beside chunking and sending it, and the receiver
// hashes what has arrived while it receives the rest. The caller owns the
// bytes and promises not to change or free [0, end) after Advance(end) until
// HexDigest() returned or the object is destroyed. Methods are for one
// calling thread at a time; the hashing thread is internal.
#ifndef DRIFTSCOPE_PROTO_LIB_BACKGROUND_SHA256_H_
#define DRIFTSCOPE_PROTO_LIB_BACKGROUND_SHA256_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "engine/core/sha256.h"

namespace driftscope {

class BackgroundSha256 {
 public:
  explicit BackgroundSha256(const uint8_t* data);
  ~BackgroundSha256();  // stops hashing at the next block and joins
  BackgroundSha256(const BackgroundSha256&) = delete;
  BackgroundSha256& operator=(const BackgroundSha256&) = delete;

  // Bytes [0, end) are final and may be hashed. `end` never decreases.
  void Advance(size_t end);

  // Waits until every advanced byte is hashed; the digest of [0, end) as 64
  // lowercase hex digits. Call once.
  std::string HexDigest();

 private:
  void Loop();
  bool HasWorkOrStop() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool AllHashed() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const uint8_t* const data_;
  Sha256 sha_;  // used by the hashing thread only, until it has been joined
  absl::Mutex mu_;
  size_t available_ ABSL_GUARDED_BY(mu_) = 0;
  size_t hashed_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_PROTO_LIB_BACKGROUND_SHA256_H_
