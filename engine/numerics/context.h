// Context: the numerics a run computes with, resolved once from a Profile.
//
// Layers, losses and optimizers do all their matrix products through
// Context::Gemm so that a profile can change how reductions are ordered
// without touching the math. A Context is used by one run at a time; its
// thread pool is owned by it.
#ifndef DRIFTSCOPE_ENGINE_NUMERICS_CONTEXT_H_
#define DRIFTSCOPE_ENGINE_NUMERICS_CONTEXT_H_

#include <memory>

#include "engine/numerics/profile.h"

namespace driftscope {

class ThreadPool;

class Context {
 public:
  explicit Context(const Profile& profile);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const Profile& profile() const { return profile_; }

  // Row-major C(m×n) = beta·C + op(A)·op(B), op(A) is m×k, op(B) is k×n.
  // trans_a: A is stored k×m (lda = its row stride); same for trans_b.
  // beta must be 0 (overwrite) or 1 (accumulate). The result's bits depend
  // only on the shapes and the profile, never on profile().threads: the
  // output is cut into tiles of a fixed size and each tile is one product.
  template <typename T>
  void Gemm(bool trans_a, bool trans_b, int m, int n, int k, const T* a,
            int lda, const T* b, int ldb, T beta, T* c, int ldc) const;

 private:
  Profile profile_;
  std::unique_ptr<ThreadPool> pool_;  // null when threads == 1
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_NUMERICS_CONTEXT_H_
