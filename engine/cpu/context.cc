// Context::Gemm: one entry point, every reduction order a profile can ask
// for. See engine/numerics/context.h.
#include "engine/numerics/context.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <mutex>
#include <random>
#include <type_traits>

#include "engine/cpu/kernel_table.h"
#include "engine/cuda/cuda_backend_loader.h"
#include "engine/numerics/rounding.h"
#include "engine/numerics/thread_pool.h"
#include "engine/rng/philox.h"

namespace driftscope {

namespace {

// Output columns per tile: every Eigen product is cut into tiles of this
// fixed width, whatever the thread count, and threads take whole tiles. The
// width is part of the arithmetic: Eigen's FMA kernels give different bits
// for a column slice than for the whole product (measured), so it must not
// depend on the thread count. Changing it changes results.
constexpr int kTileCols = 512;

// Below Eigen's GEMM path (m + n + k < 20: a coefficient-wise "lazy"
// product) and for vector shapes (m == 1 or n == 1: GEMV), Eigen's results
// depend on the ALIGNMENT of the operands, because its vectorized loops peel
// unaligned heads. Those shapes go through PlainGemm instead, so a product's
// bits never depend on where its data sits (or on the ISA: no FMA, k summed
// left to right).
bool NeedsPlainLoop(int m, int n, int k) {
  return m + n + k < 24 || m == 1 || n == 1;
}

template <typename T>
void PlainGemm(bool trans_a, bool trans_b, int m, int n, int k, const T* a,
               int lda, const T* b, int ldb, T beta, T* c, int ldc) {
  // Row i of C accumulates over p in order, one output row at a time:
  // vectorizes across j without changing any element's order of operations.
  thread_local std::vector<T> acc;
  acc.resize(static_cast<size_t>(n));
  for (int i = 0; i < m; ++i) {
    std::fill(acc.begin(), acc.end(), T(0));
    for (int p = 0; p < k; ++p) {
      const T av = trans_a ? a[static_cast<int64_t>(p) * lda + i]
                           : a[static_cast<int64_t>(i) * lda + p];
      if (trans_b) {
        for (int j = 0; j < n; ++j) {
          acc[j] += av * b[static_cast<int64_t>(j) * ldb + p];
        }
      } else {
        const T* bp = b + static_cast<int64_t>(p) * ldb;
        for (int j = 0; j < n; ++j) acc[j] += av * bp[j];
      }
    }
    T* ci = c + static_cast<int64_t>(i) * ldc;
    for (int j = 0; j < n; ++j) ci[j] = beta == T(0) ? acc[j] : ci[j] + acc[j];
  }
}
// Chunks of k used by nondet=on when the profile sets no split-k.
constexpr int kNondetChunks = 4;
// Stream-id base of the stochastic-rounding streams (one per GEMM call).
constexpr uint64_t kSrStreamBase = uint64_t{1} << 40;

template <typename T>
PackFn<T> TablePack(const CpuKernelTable* t);
template <>
PackFn<float> TablePack<float>(const CpuKernelTable* t) {
  return t->spack_b;
}
template <>
PackFn<double> TablePack<double>(const CpuKernelTable* t) {
  return t->dpack_b;
}
template <typename T>
PackedGemmFn<T> TablePackedGemm(const CpuKernelTable* t);
template <>
PackedGemmFn<float> TablePackedGemm<float>(const CpuKernelTable* t) {
  return t->sgemm_packed_b;
}
template <>
PackedGemmFn<double> TablePackedGemm<double>(const CpuKernelTable* t) {
  return t->dgemm_packed_b;
}

template <typename T>
GemmFn<T> TableGemm(const CpuKernelTable* t);
template <>
GemmFn<float> TableGemm<float>(const CpuKernelTable* t) {
  return t->sgemm;
}
template <>
GemmFn<double> TableGemm<double>(const CpuKernelTable* t) {
  return t->dgemm;
}

// Rounds a (rows × cols, stride ld) matrix into a dense copy (stride cols).
template <typename Round>
void RoundCopy(const float* src, int rows, int cols, int ld, Round round,
               std::vector<float>* dst) {
  dst->resize(static_cast<size_t>(rows) * cols);
  for (int r = 0; r < rows; ++r) {
    const float* s = src + static_cast<int64_t>(r) * ld;
    float* d = dst->data() + static_cast<int64_t>(r) * cols;
    for (int c = 0; c < cols; ++c) d[c] = round(s[c]);
  }
}

}  // namespace

absl::Status Context::Check(const Profile& profile) {
  // A GPU profile runs where its device opens; the emulation runs anywhere.
  if (profile.device == Device::kCuda) return CheckCudaDevice(profile);
  absl::StatusOr<const CpuKernelTable*> k = KernelsFor(profile.isa);
  if (!k.ok()) return k.status();
  if (profile.sr && profile.precision == Precision::kFp64) {
    return absl::InvalidArgumentError(
        "profile: sr=on rounds GEMM outputs to float32 and needs fp32, bf16 "
        "or fp16, not fp64");
  }
  return absl::OkStatus();
}

Profile ResolveProfile(const Profile& profile) {
  Profile resolved = profile;
  resolved.isa = ResolveIsa(resolved.isa);
  return resolved;
}

Context::Context(const Profile& profile, uint64_t seed)
    : profile_(profile), seed_(seed) {
  if (profile_.nondet) {
    std::random_device rd;
    entropy_ = (uint64_t{rd()} << 32) ^ rd();
  }
  profile_ = ResolveProfile(profile_);
  absl::StatusOr<const CpuKernelTable*> k = KernelsFor(profile_.isa);
  kernels_ = k.ok() ? *k : *KernelsFor(Isa::kX86_64);
  if (profile_.threads > 1) {
    pool_ = std::make_unique<ThreadPool>(profile_.threads);
  }
}

Context::~Context() = default;

uint64_t Context::NextEntropy() const {
  // splitmix64 over a state seeded from std::random_device.
  uint64_t z = (entropy_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

const char* Context::kernel_isa() const { return kernels_->isa; }
const char* Context::kernel_simd() const { return kernels_->simd; }

void Context::RoundActivations(float* x, int64_t n) const {
  if (profile_.precision == Precision::kBf16) {
    for (int64_t i = 0; i < n; ++i) x[i] = RoundToBf16(x[i]);
  } else if (profile_.precision == Precision::kFp16) {
    for (int64_t i = 0; i < n; ++i) x[i] = RoundToFp16(x[i]);
  }
}

template <typename T>
void Context::GemmTiled(bool trans_a, bool trans_b, int m, int n, int k,
                        const T* a, int lda, const T* b, int ldb, T beta, T* c,
                        int ldc) const {
  if (NeedsPlainLoop(m, n, k)) {
    PlainGemm(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
    return;
  }
  const GemmFn<T> gemm = TableGemm<T>(kernels_);
  const int tiles = (n + kTileCols - 1) / kTileCols;
  auto tile = [&](int t) {
    const int j0 = t * kTileCols;
    const int nt = std::min(kTileCols, n - j0);
    const T* bt = trans_b ? b + static_cast<int64_t>(j0) * ldb : b + j0;
    if (NeedsPlainLoop(m, nt, k)) {
      PlainGemm(trans_a, trans_b, m, nt, k, a, lda, bt, ldb, beta, c + j0, ldc);
    } else {
      gemm(trans_a, trans_b, m, nt, k, a, lda, bt, ldb, beta, c + j0, ldc);
    }
  };
  if (pool_ && tiles > 1) {
    pool_->ParallelFor(tiles, tile);
  } else {
    for (int t = 0; t < tiles; ++t) tile(t);
  }
}

template <typename T>
bool Context::PlainTiledProducts() const {
  if (profile_.nondet || (profile_.thread_reduce && profile_.threads > 1) ||
      profile_.gemm != GemmOrder::kBlocked) {
    return false;
  }
  if constexpr (std::is_same_v<T, float>) {
    return profile_.precision != Precision::kBf16 &&
           profile_.precision != Precision::kFp16 &&
           profile_.matmul != MatmulInputs::kTf32 && !profile_.sr;
  }
  return true;
}

// GemmTiled's tiles, each packed as the product of that tile would pack it.
// A tile GemmTiled would run through PlainGemm (or the whole product) leaves
// the operand unpacked: GemmPacked then simply calls Gemm.
template <typename T>
void Context::Pack(int m, int n, int k, const T* b, int ldb,
                   PackedB<T>* packed) const {
  packed->m_ = m;
  packed->n_ = n;
  packed->k_ = k;
  packed->b_ = b;
  packed->ldb_ = ldb;
  packed->packed_ = false;
  if (m <= 0 || n <= 0 || k <= 0 || !PlainTiledProducts<T>() ||
      NeedsPlainLoop(m, n, k)) {
    return;
  }
  const PackFn<T> pack = TablePack<T>(kernels_);
  const int tiles = (n + kTileCols - 1) / kTileCols;
  packed->tile_offset_.assign(static_cast<size_t>(tiles) + 1, 0);
  for (int t = 0; t < tiles; ++t) {
    const int nt = std::min(kTileCols, n - t * kTileCols);
    if (NeedsPlainLoop(m, nt, k)) return;
    packed->tile_offset_[t + 1] =
        packed->tile_offset_[t] + pack(m, nt, k, b, ldb, nullptr);
  }
  const size_t total = packed->tile_offset_[tiles] + 64 / sizeof(T);
  if (packed->storage_.size() < total) packed->storage_.resize(total);
  T* data = packed->Data();
  auto tile = [&](int t) {
    const int j0 = t * kTileCols;
    pack(m, std::min(kTileCols, n - j0), k, b + j0, ldb,
         data + packed->tile_offset_[t]);
  };
  if (pool_ && tiles > 1) {
    pool_->ParallelFor(tiles, tile);
  } else {
    for (int t = 0; t < tiles; ++t) tile(t);
  }
  packed->packed_ = true;
}

template <typename T>
void Context::GemmPacked(const T* a, int lda, const PackedB<T>& b, T* c,
                         int ldc) const {
  const int m = b.m_, n = b.n_, k = b.k_;
  if (!b.packed_) {
    Gemm<T>(false, false, m, n, k, a, lda, b.b_, b.ldb_, T(0), c, ldc);
    return;
  }
  const PackedGemmFn<T> gemm = TablePackedGemm<T>(kernels_);
  const T* data = b.Data();
  const int tiles = (n + kTileCols - 1) / kTileCols;
  auto tile = [&](int t) {
    const int j0 = t * kTileCols;
    gemm(m, std::min(kTileCols, n - j0), k, a, lda, data + b.tile_offset_[t],
         T(0), c + j0, ldc);
  };
  if (pool_ && tiles > 1) {
    pool_->ParallelFor(tiles, tile);
  } else {
    for (int t = 0; t < tiles; ++t) tile(t);
  }
}

template <typename T>
void Context::GemmSplitK(int chunks, bool completion_order, bool trans_a,
                         bool trans_b, int m, int n, int k, const T* a, int lda,
                         const T* b, int ldb, T beta, T* c, int ldc) const {
  chunks = std::max(1, std::min(chunks, k));
  const int per = (k + chunks - 1) / chunks;
  chunks = (k + per - 1) / per;
  const size_t mn = static_cast<size_t>(m) * n;
  std::vector<T> partial(mn * chunks);
  std::vector<int> order;
  std::mutex order_mu;
  auto chunk = [&](int q) {
    const int p0 = q * per, kq = std::min(per, k - p0);
    const T* aq = trans_a ? a + static_cast<int64_t>(p0) * lda : a + p0;
    const T* bq = trans_b ? b + p0 : b + static_cast<int64_t>(p0) * ldb;
    (NeedsPlainLoop(m, n, kq) ? &PlainGemm<T> : TableGemm<T>(kernels_))(
        trans_a, trans_b, m, n, kq, aq, lda, bq, ldb, T(0),
        partial.data() + mn * q, n);
    std::lock_guard<std::mutex> lock(order_mu);
    order.push_back(q);
  };
  if (pool_) {
    pool_->ParallelFor(chunks, chunk);
  } else {
    for (int q = 0; q < chunks; ++q) chunk(q);
  }
  if (!completion_order) {
    for (int q = 0; q < chunks; ++q) order[q] = q;
  } else {
    // Like float atomics, the order is whatever happens: the completion
    // order, shuffled with entropy, because on a quiet machine the threads
    // would finish in the same order too often to show the effect.
    for (int q = chunks - 1; q > 0; --q) {
      std::swap(order[q], order[NextEntropy() % (q + 1)]);
    }
  }
  for (int i = 0; i < m; ++i) {
    T* ci = c + static_cast<int64_t>(i) * ldc;
    for (int j = 0; j < n; ++j) {
      T s = partial[mn * order[0] + static_cast<size_t>(i) * n + j];
      for (int q = 1; q < chunks; ++q) {
        s += partial[mn * order[q] + static_cast<size_t>(i) * n + j];
      }
      ci[j] = beta == T(0) ? s : ci[j] + s;
    }
  }
}

template <typename T>
void Context::GemmDispatch(bool trans_a, bool trans_b, int m, int n, int k,
                           const T* a, int lda, const T* b, int ldb, T beta,
                           T* c, int ldc) const {
  if (profile_.nondet) {
    const int chunks =
        profile_.gemm == GemmOrder::kSplitK ? profile_.split_k : kNondetChunks;
    GemmSplitK(chunks, true, trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c,
               ldc);
    return;
  }
  if (profile_.thread_reduce && profile_.threads > 1) {
    GemmSplitK(profile_.threads, false, trans_a, trans_b, m, n, k, a, lda, b,
               ldb, beta, c, ldc);
    return;
  }
  switch (profile_.gemm) {
    case GemmOrder::kBlocked:
      GemmTiled(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
      return;
    case GemmOrder::kSplitK:
      GemmSplitK(profile_.split_k, false, trans_a, trans_b, m, n, k, a, lda, b,
                 ldb, beta, c, ldc);
      return;
    case GemmOrder::kSequential:
    case GemmOrder::kPairwise:
      GemmOrdered(profile_.gemm == GemmOrder::kPairwise, trans_a, trans_b, m, n,
                  k, a, lda, b, ldb, beta, c, ldc);
      return;
  }
}

// Per output element, exactly the scalar definitions: sequential is
// s = ((0 + a0b0) + a1b1) + ...; pairwise sums blocks of 8 that way and
// combines halves recursively (numpy's cascade). The kernels of the profile's
// ISA level compute it (engine/cpu/ordered_gemm.h); the bits are the same
// at every level.
template <typename T>
void Context::GemmOrdered(bool pairwise, bool trans_a, bool trans_b, int m,
                          int n, int k, const T* a, int lda, const T* b,
                          int ldb, T beta, T* c, int ldc) const {
  if constexpr (std::is_same_v<T, float>) {
    kernels_->sgemm_ordered(pairwise, trans_a, trans_b, m, n, k, a, lda, b, ldb,
                            beta, c, ldc);
  } else {
    kernels_->dgemm_ordered(pairwise, trans_a, trans_b, m, n, k, a, lda, b, ldb,
                            beta, c, ldc);
  }
}

template <typename T>
void Context::Gemm(bool trans_a, bool trans_b, int m, int n, int k, const T* a,
                   int lda, const T* b, int ldb, T beta, T* c, int ldc) const {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (beta == T(0)) {
      for (int i = 0; i < m; ++i) {
        std::fill(c + static_cast<int64_t>(i) * ldc,
                  c + static_cast<int64_t>(i) * ldc + n, T(0));
      }
    }
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    int mode = 0;  // 1 bf16, 2 fp16, 3 tf32 (tf32 applies on top)
    if (profile_.precision == Precision::kBf16) mode = 1;
    if (profile_.precision == Precision::kFp16) mode = 2;
    if (profile_.matmul == MatmulInputs::kTf32) mode = 3;
    if (mode != 0) {
      const int ar = trans_a ? k : m, ac = trans_a ? m : k;
      const int br = trans_b ? n : k, bc = trans_b ? k : n;
      auto copy = [&](const float* src, int rows, int cols, int ld,
                      std::vector<float>* dst) {
        if (mode == 1) RoundCopy(src, rows, cols, ld, RoundToBf16, dst);
        if (mode == 2) RoundCopy(src, rows, cols, ld, RoundToFp16, dst);
        if (mode == 3) RoundCopy(src, rows, cols, ld, RoundToTf32, dst);
      };
      copy(a, ar, ac, lda, &scratch_a_);
      copy(b, br, bc, ldb, &scratch_b_);
      a = scratch_a_.data();
      lda = ac;
      b = scratch_b_.data();
      ldb = bc;
    }
    if (profile_.sr) {
      // The product in double (exact products, double sums), then each
      // output rounded up or down at random in proportion to its distance.
      std::vector<double> ad(static_cast<size_t>(trans_a ? k : m) *
                             (trans_a ? m : k));
      std::vector<double> bd(static_cast<size_t>(trans_b ? n : k) *
                             (trans_b ? k : n));
      const int ar = trans_a ? k : m, ac = trans_a ? m : k;
      const int br = trans_b ? n : k, bc = trans_b ? k : n;
      for (int r = 0; r < ar; ++r)
        for (int q = 0; q < ac; ++q)
          ad[static_cast<size_t>(r) * ac + q] =
              a[static_cast<int64_t>(r) * lda + q];
      for (int r = 0; r < br; ++r)
        for (int q = 0; q < bc; ++q)
          bd[static_cast<size_t>(r) * bc + q] =
              b[static_cast<int64_t>(r) * ldb + q];
      scratch_d_.assign(static_cast<size_t>(m) * n, 0.0);
      GemmDispatch<double>(trans_a, trans_b, m, n, k, ad.data(), ac, bd.data(),
                           bc, 0.0, scratch_d_.data(), n);
      PhiloxStream stream(seed_, kSrStreamBase + sr_calls_++);
      for (int i = 0; i < m; ++i) {
        for (int j = 0; j < n; ++j) {
          float& cij = c[static_cast<int64_t>(i) * ldc + j];
          const double exact = scratch_d_[static_cast<size_t>(i) * n + j] +
                               (beta == 0.0f ? 0.0 : static_cast<double>(cij));
          cij =
              StochasticRoundToFloat(exact, Uint32ToFloat(stream.NextUint32()));
        }
      }
      return;
    }
  }
  GemmDispatch<T>(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
}

template void Context::Gemm<float>(bool, bool, int, int, int, const float*, int,
                                   const float*, int, float, float*, int) const;
template void Context::Gemm<double>(bool, bool, int, int, int, const double*,
                                    int, const double*, int, double, double*,
                                    int) const;
template void Context::Pack<float>(int, int, int, const float*, int,
                                   PackedB<float>*) const;
template void Context::Pack<double>(int, int, int, const double*, int,
                                    PackedB<double>*) const;
template void Context::GemmPacked<float>(const float*, int,
                                         const PackedB<float>&, float*,
                                         int) const;
template void Context::GemmPacked<double>(const double*, int,
                                          const PackedB<double>&, double*,
                                          int) const;

}  // namespace driftscope
