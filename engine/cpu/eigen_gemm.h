// One row-major Eigen GEMM, as a header so that each ISA build instantiates
// its own copy (see kernel_table.h). Internal to engine/cpu.
#ifndef DRIFTSCOPE_ENGINE_CPU_EIGEN_GEMM_H_
#define DRIFTSCOPE_ENGINE_CPU_EIGEN_GEMM_H_

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <vector>

namespace driftscope {
namespace cpu_internal {

template <typename T>
using RowMat =
    Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstMap = Eigen::Map<const RowMat<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using MutMap = Eigen::Map<RowMat<T>, 0, Eigen::OuterStride<>>;

// The caller (Context::Gemm) keeps Eigen away from the shapes where its
// results depend on operand alignment: see NeedsPlainLoop in context.cc.
template <typename T>
void EigenGemm(bool trans_a, bool trans_b, int m, int n, int k, const T* a,
               int lda, const T* b, int ldb, T beta, T* c, int ldc) {
  MutMap<T> C(c, m, n, Eigen::OuterStride<>(ldc));
  const int ar = trans_a ? k : m, ac = trans_a ? m : k;
  const int br = trans_b ? n : k, bc = trans_b ? k : n;
  ConstMap<T> A(a, ar, ac, Eigen::OuterStride<>(lda));
  ConstMap<T> B(b, br, bc, Eigen::OuterStride<>(ldb));
  if (beta == T(0)) C.setZero();
  if (!trans_a && !trans_b) {
    C.noalias() += A * B;
  } else if (trans_a && !trans_b) {
    C.noalias() += A.transpose() * B;
  } else if (!trans_a && trans_b) {
    C.noalias() += A * B.transpose();
  } else {
    C.noalias() += A.transpose() * B.transpose();
  }
}

// Eigen's blocked product C(m×n) = beta·C + A(m×k)·B(k×n), row-major, split
// in two: EigenPackB packs B once, EigenGemmPackedB runs products on the
// packed B. Together they are exactly what EigenGemm(false, false, ...) does
// for the same shapes — the same blocking (computeProductBlockingSizes for
// one thread), the same packed panels and the same gebp kernel calls in the
// same order — so they give its bits; a product simply skips re-packing a B
// it has already seen (a recurrent kernel, at every timestep).
//
// In Eigen's view the row-major product is C^T = B^T·A^T, column-major: its
// "lhs" is our B (rows n), its "rhs" our A (cols m), its depth k; the lhs
// panels are packed per (row block i2, depth block k2), in that loop order.
template <typename T>
struct EigenPacked {
  using Index = Eigen::Index;
  using Traits = Eigen::internal::gebp_traits<T, T>;
  using LhsMapper =
      Eigen::internal::const_blas_data_mapper<T, Index, Eigen::ColMajor>;
  using RhsMapper =
      Eigen::internal::const_blas_data_mapper<T, Index, Eigen::ColMajor>;
  using ResMapper = Eigen::internal::blas_data_mapper<T, Index, Eigen::ColMajor,
                                                      Eigen::Unaligned, 1>;
  // Packed blocks start on a 64-byte boundary (the kernel loads them with
  // aligned loads, as it does Eigen's own freshly allocated block).
  static constexpr Index kAlign = 64 / sizeof(T);

  struct Blocking {
    Index rows, cols, depth, kc, mc, nc;
  };
  // gemm_blocking_space(m, n, k, 1 thread, l3_blocking) of a row-major
  // destination, then general_matrix_matrix_product::run's clamping.
  static Blocking For(int m, int n, int k) {
    Index kc = k, mc = n, nc = m;
    Eigen::internal::computeProductBlockingSizes<T, T, 1, Index>(kc, mc, nc, 1);
    return {n, m, k, kc, std::min<Index>(n, mc), std::min<Index>(m, nc)};
  }
  static Index BlockSize(Index mc, Index kc) {
    return (mc * kc + kAlign - 1) / kAlign * kAlign;
  }
};

// Elements EigenPackB writes for these shapes.
template <typename T>
size_t EigenPackedSize(int m, int n, int k) {
  using P = EigenPacked<T>;
  const typename P::Blocking bl = P::For(m, n, k);
  size_t size = 0;
  for (Eigen::Index i2 = 0; i2 < bl.rows; i2 += bl.mc) {
    for (Eigen::Index k2 = 0; k2 < bl.depth; k2 += bl.kc) {
      size += P::BlockSize(std::min(i2 + bl.mc, bl.rows) - i2,
                           std::min(k2 + bl.kc, bl.depth) - k2);
    }
  }
  return size;
}

// Packs B (k×n, row stride ldb) for products with m-row A's into `out`
// (EigenPackedSize elements, 64-byte aligned).
template <typename T>
void EigenPackB(int m, int n, int k, const T* b, int ldb, T* out) {
  using P = EigenPacked<T>;
  using Traits = typename P::Traits;
  const typename P::Blocking bl = P::For(m, n, k);
  typename P::LhsMapper lhs(b, ldb);
  Eigen::internal::gemm_pack_lhs<
      T, Eigen::Index, typename P::LhsMapper, Traits::mr, Traits::LhsProgress,
      typename Traits::LhsPacket4Packing, Eigen::ColMajor>
      pack_lhs;
  for (Eigen::Index i2 = 0; i2 < bl.rows; i2 += bl.mc) {
    const Eigen::Index mc = std::min(i2 + bl.mc, bl.rows) - i2;
    for (Eigen::Index k2 = 0; k2 < bl.depth; k2 += bl.kc) {
      const Eigen::Index kc = std::min(k2 + bl.kc, bl.depth) - k2;
      pack_lhs(out, lhs.getSubMapper(i2, k2), kc, mc);
      out += P::BlockSize(mc, kc);
    }
  }
}

// C(m×n) = beta·C + A(m×k)·B with B packed by EigenPackB(m, n, k, ...).
template <typename T>
void EigenGemmPackedB(int m, int n, int k, const T* a, int lda, const T* packed,
                      T beta, T* c, int ldc) {
  using P = EigenPacked<T>;
  using Traits = typename P::Traits;
  using Index = Eigen::Index;
  if (beta == T(0)) MutMap<T>(c, m, n, Eigen::OuterStride<>(ldc)).setZero();
  const typename P::Blocking bl = P::For(m, n, k);
  typename P::RhsMapper rhs(a, lda);
  typename P::ResMapper res(c, ldc);
  Eigen::internal::gemm_pack_rhs<T, Index, typename P::RhsMapper, Traits::nr,
                                 Eigen::ColMajor>
      pack_rhs;
  Eigen::internal::gebp_kernel<T, T, Index, typename P::ResMapper, Traits::mr,
                               Traits::nr, false, false>
      gebp;
  thread_local std::vector<T, Eigen::aligned_allocator<T>> block_b;
  block_b.resize(static_cast<size_t>(bl.kc * bl.nc));
  // As run(): the rhs block is packed once when it is the whole rhs.
  const bool pack_rhs_once =
      bl.mc != bl.rows && bl.kc == bl.depth && bl.nc == bl.cols;
  for (Index i2 = 0; i2 < bl.rows; i2 += bl.mc) {
    const Index mc = std::min(i2 + bl.mc, bl.rows) - i2;
    for (Index k2 = 0; k2 < bl.depth; k2 += bl.kc) {
      const Index kc = std::min(k2 + bl.kc, bl.depth) - k2;
      for (Index j2 = 0; j2 < bl.cols; j2 += bl.nc) {
        const Index nc = std::min(j2 + bl.nc, bl.cols) - j2;
        if (!pack_rhs_once || i2 == 0) {
          pack_rhs(block_b.data(), rhs.getSubMapper(k2, j2), kc, nc);
        }
        gebp(res.getSubMapper(i2, j2), packed, block_b.data(), mc, kc, nc,
             T(1));
      }
      packed += P::BlockSize(mc, kc);
    }
  }
}

}  // namespace cpu_internal
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CPU_EIGEN_GEMM_H_
