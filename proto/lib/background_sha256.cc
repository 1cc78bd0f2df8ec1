#include "proto/lib/background_sha256.h"

#include <pthread.h>

#include <algorithm>

namespace driftscope {

namespace {
// Hashed per step: the stop flag is looked at every ~0.5 ms.
constexpr size_t kBlockBytes = size_t{1} << 20;
}  // namespace

BackgroundSha256::BackgroundSha256(const uint8_t* data)
    : data_(data), thread_([this] { Loop(); }) {}

BackgroundSha256::~BackgroundSha256() {
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  if (thread_.joinable()) thread_.join();
}

void BackgroundSha256::Advance(size_t end) {
  absl::MutexLock lock(&mu_);
  available_ = std::max(available_, end);
}

bool BackgroundSha256::HasWorkOrStop() const {
  return stop_ || available_ > hashed_;
}

bool BackgroundSha256::AllHashed() const { return hashed_ == available_; }

void BackgroundSha256::Loop() {
  pthread_setname_np(pthread_self(), "sha256");  // for ps and top
  for (;;) {
    size_t from = 0, to = 0;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(this, &BackgroundSha256::HasWorkOrStop));
      if (stop_) return;
      from = hashed_;
      to = std::min(available_, from + kBlockBytes);
    }
    sha_.Update(data_ + from, to - from);
    absl::MutexLock lock(&mu_);
    hashed_ = to;
  }
}

std::string BackgroundSha256::HexDigest() {
  {
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(this, &BackgroundSha256::AllHashed));
    stop_ = true;
  }
  thread_.join();
  return sha_.HexDigest();
}

}  // namespace driftscope
