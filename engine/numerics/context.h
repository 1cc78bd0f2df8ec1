// Context: the numerics a run computes with, resolved once from a Profile.
//
// Layers, losses and optimizers do all their matrix products through
// Context::Gemm, so a profile changes how products are rounded and reduced
// (ISA level, reduction order, split-k, TF32/bf16/fp16 input rounding,
// stochastic rounding, nondeterministic combination) without touching the
// math. A Context is used by one thread at a time (it owns scratch memory and
// a thread pool); create one per run.
#ifndef DRIFTSCOPE_ENGINE_NUMERICS_CONTEXT_H_
#define DRIFTSCOPE_ENGINE_NUMERICS_CONTEXT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "engine/numerics/profile.h"

namespace driftscope {

class ThreadPool;
struct CpuKernelTable;
class Context;

// A right operand B (k×n, row-major) prepared once for many products
// C(m×n) = A(m×k)·B of the same shapes, e.g. a recurrent kernel used at every
// timestep of one Forward or Backward. Context::Pack fills it and
// Context::GemmPacked uses it. When the profile's products are Eigen's
// blocked kernels it holds the panels each of those products would otherwise
// pack again; for every other profile it only remembers B. Either way a
// product through it has exactly the bits of Context::Gemm on B. It refers
// to B: the owner keeps B alive and unchanged while using it. Its storage is
// reused by the next Pack (it only grows). One thread at a time.
template <typename T>
class PackedB {
 public:
  PackedB() = default;
  PackedB(const PackedB&) = delete;
  PackedB& operator=(const PackedB&) = delete;

  int m() const { return m_; }
  int n() const { return n_; }
  int k() const { return k_; }
  // Whether it holds packed panels (else products run on B as given).
  bool packed() const { return packed_; }

 private:
  friend class Context;
  T* Data() {
    return reinterpret_cast<T*>(
        (reinterpret_cast<uintptr_t>(storage_.data()) + 63) & ~uintptr_t{63});
  }
  const T* Data() const { return const_cast<PackedB*>(this)->Data(); }

  int m_ = 0, n_ = 0, k_ = 0, ldb_ = 0;
  const T* b_ = nullptr;
  bool packed_ = false;              // false: products run on b_
  std::vector<size_t> tile_offset_;  // per 512-column tile, into Data()
  std::vector<T> storage_;           // 64 bytes of slack for alignment
};

// `profile` as a run computes with it on this machine (isa=auto resolved to
// the level in use): what Context::profile() and a run report, without
// building a Context (scratch memory, thread pool). Pure; safe for
// concurrent use.
Profile ResolveProfile(const Profile& profile);

class Context {
 public:
  // `seed` keys the stochastic-rounding stream (profile sr=on). The profile
  // must have passed Context::Check (otherwise x86-64 kernels are used).
  explicit Context(const Profile& profile, uint64_t seed = 0);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  // Whether this build and CPU can run `profile` (e.g. isa=x86-64-v4 on a CPU
  // without AVX-512 is FailedPrecondition). Runs never silently fall back.
  static absl::Status Check(const Profile& profile);

  // The profile as it runs: isa=auto resolved to the level in use. This is
  // what a run reports.
  const Profile& profile() const { return profile_; }
  const CpuKernelTable& kernels() const { return *kernels_; }
  // The ISA level and SIMD set of the kernels actually in use.
  const char* kernel_isa() const;
  const char* kernel_simd() const;

  // Row-major C(m×n) = beta·C + op(A)·op(B), op(A) is m×k, op(B) is k×n.
  // trans_a: A is stored k×m (lda = its row stride); same for trans_b.
  // beta must be 0 (overwrite) or 1 (accumulate). Unless the profile asks
  // for a thread-dependent reduction or nondeterminism, the bits depend only
  // on the shapes and the profile, never on the thread count: the output is
  // cut into tiles of a fixed width and each tile is one product.
  template <typename T>
  void Gemm(bool trans_a, bool trans_b, int m, int n, int k, const T* a,
            int lda, const T* b, int ldb, T beta, T* c, int ldc) const;

  // Prepares B (k×n, row stride ldb) for products with m-row A's (see
  // PackedB); B must stay unchanged while `packed` is used.
  template <typename T>
  void Pack(int m, int n, int k, const T* b, int ldb, PackedB<T>* packed) const;
  // C(m×n) = A(m×k)·B for the B and shapes `b` was packed with: the bits of
  // Gemm(false, false, m, n, k, a, lda, B, ldb, 0, c, ldc).
  template <typename T>
  void GemmPacked(const T* a, int lda, const PackedB<T>& b, T* c,
                  int ldc) const;

  // Rounds x[0..n) in place to the profile's activation precision (bf16 or
  // fp16 for mixed precision; no-op otherwise). Layers call it on the
  // activations they produce.
  void RoundActivations(float* x, int64_t n) const;
  void RoundActivations(double*, int64_t) const {}

 private:
  template <typename T>
  void GemmDispatch(bool trans_a, bool trans_b, int m, int n, int k, const T* a,
                    int lda, const T* b, int ldb, T beta, T* c, int ldc) const;
  template <typename T>
  void GemmSplitK(int chunks, bool combine_in_completion_order, bool trans_a,
                  bool trans_b, int m, int n, int k, const T* a, int lda,
                  const T* b, int ldb, T beta, T* c, int ldc) const;
  template <typename T>
  void GemmOrdered(bool pairwise, bool trans_a, bool trans_b, int m, int n,
                   int k, const T* a, int lda, const T* b, int ldb, T beta,
                   T* c, int ldc) const;
  uint64_t NextEntropy() const;  // nondet=on: run-to-run varying numbers
  // Whether products run GemmTiled on the operands as given (no input
  // rounding, no other reduction order): then PackedB holds packed panels.
  template <typename T>
  bool PlainTiledProducts() const;
  template <typename T>
  void GemmTiled(bool trans_a, bool trans_b, int m, int n, int k, const T* a,
                 int lda, const T* b, int ldb, T beta, T* c, int ldc) const;

  Profile profile_;
  const CpuKernelTable* kernels_ = nullptr;
  std::unique_ptr<ThreadPool> pool_;  // null when threads == 1
  uint64_t seed_;
  mutable uint64_t sr_calls_ = 0;
  mutable uint64_t entropy_ = 0;
  mutable std::vector<float> scratch_a_, scratch_b_;
  mutable std::vector<double> scratch_d_;
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_NUMERICS_CONTEXT_H_
