// FileBlobStore: the content-addressed blob directory of the coordinator's
// store (DESIGN §9). A blob with SHA-256 "abcdef..." lives in
// `<root>/ab/cdef...` (the first two hex digits name a subdirectory, so no
// directory grows past 1/256 of the blobs). Writes go to `<root>/tmp/`,
// are fsync'ed, renamed into place and the directory is fsync'ed, so a blob
// that Put returned is on disk and a crash never leaves a partial blob under
// its final name. Get re-hashes what it reads.
//
// Safe for concurrent use (threads, and processes: rename is atomic and two
// writers of the same key write the same bytes). Temporary files left by a
// crash are removed by Open; do not Open one root from two processes at
// once (SqliteStore holds a lock on its directory).
#ifndef DRIFTSCOPE_SERVER_COORDINATOR_BLOB_STORE_H_
#define DRIFTSCOPE_SERVER_COORDINATOR_BLOB_STORE_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/coordinator/store.h"

namespace driftscope::coordinator {

class FileBlobStore : public BlobStore {
 public:
  // Creates `root` (and its parents) when missing.
  static absl::StatusOr<std::unique_ptr<FileBlobStore>> Open(
      const std::string& root);

  FileBlobStore(const FileBlobStore&) = delete;
  FileBlobStore& operator=(const FileBlobStore&) = delete;

  absl::StatusOr<std::string> Put(absl::string_view data) override;
  absl::StatusOr<std::string> PutVerified(absl::string_view data,
                                          absl::string_view sha256) override;
  // InvalidArgument when `sha256` is not 64 lowercase hex digits.
  absl::StatusOr<std::string> Get(absl::string_view sha256) override;
  absl::Status GetInto(absl::string_view sha256,
                       absl::Span<uint8_t> out) override;
  bool Has(absl::string_view sha256) override;

  // Where the blob `sha256` is (or would be) stored.
  std::string PathOf(absl::string_view sha256) const;

 private:
  explicit FileBlobStore(std::string root) : root_(std::move(root)) {}

  const std::string root_;
};

// True when `key` is 64 lowercase hex digits.
bool IsBlobKey(absl::string_view key);

}  // namespace driftscope::coordinator

#endif  // DRIFTSCOPE_SERVER_COORDINATOR_BLOB_STORE_H_
