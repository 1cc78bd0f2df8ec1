// Row-major Eigen GEMMs, as a header so that each ISA build instantiates its
// own copy (see kernel_table.h). Internal to engine/cpu; one thread per call
// (scratch is thread-local).
//
// EigenGemm is Eigen's product expression itself (`C.noalias() += A * B`
// after C.setZero() for beta 0). EigenBlockedGemm runs the same product
// through Eigen's own building blocks — the blocking of
// computeProductBlockingSizes for one thread, gemm_pack_lhs/gemm_pack_rhs and
// the gebp kernel, called in the order general_matrix_matrix_product::run
// calls them — so it gives EigenGemm's bits (tests hold it to that, per ISA
// level), and it can do two things the expression cannot:
//   - use a right operand B packed once (EigenPackB) for many products with
//     different A's: a recurrent kernel at every timestep;
//   - zero C (beta 0) block by block just before the kernel first adds into
//     the block, instead of in a separate pass over all of C: the same
//     zeros under the same additions, one memory pass fewer for a large C.
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

// In Eigen's view a row-major product C = op(A)·op(B) is the column-major
// C^T = op(B)^T·op(A)^T: its "lhs" is our B (rows n), its "rhs" our A
// (cols m), its depth k. B stored k×n (no transpose) is a column-major lhs,
// B stored n×k a row-major one; likewise A.
template <typename T>
struct EigenBlocking {
  using Index = Eigen::Index;
  using Traits = Eigen::internal::gebp_traits<T, T>;
  // Packed lhs blocks start on a 64-byte boundary (the kernel reads them
  // with aligned loads, as it does Eigen's own freshly allocated block).
  static constexpr Index kAlign = 64 / sizeof(T);

  Index rows, cols, depth, kc, mc, nc;
  // What `C.noalias() += A * B` on row-major maps sets up:
  // gemm_blocking_space(m, n, k, 1 thread, l3_blocking) of a row-major
  // destination, then general_matrix_matrix_product::run's clamping.
  EigenBlocking(int m, int n, int k) : rows(n), cols(m), depth(k) {
    kc = k;
    mc = n;
    nc = m;
    Eigen::internal::computeProductBlockingSizes<T, T, 1, Index>(kc, mc, nc, 1);
    mc = std::min<Index>(rows, mc);
    nc = std::min<Index>(cols, nc);
  }
  static Index BlockSize(Index mc, Index kc) {
    return (mc * kc + kAlign - 1) / kAlign * kAlign;
  }
  // Elements of all lhs blocks, packed in loop order (row block i2, depth
  // block k2).
  size_t PackedSize() const {
    size_t size = 0;
    for (Index i2 = 0; i2 < rows; i2 += mc) {
      for (Index k2 = 0; k2 < depth; k2 += kc) {
        size += BlockSize(std::min(i2 + mc, rows) - i2,
                          std::min(k2 + kc, depth) - k2);
      }
    }
    return size;
  }
};

template <typename T, int LhsOrder>
using EigenLhsPacker = Eigen::internal::gemm_pack_lhs<
    T, Eigen::Index,
    Eigen::internal::const_blas_data_mapper<T, Eigen::Index, LhsOrder>,
    EigenBlocking<T>::Traits::mr, EigenBlocking<T>::Traits::LhsProgress,
    typename EigenBlocking<T>::Traits::LhsPacket4Packing, LhsOrder>;

// general_matrix_matrix_product<ColMajor destination>::run, sequential
// version, with lazy zeroing for beta 0 and, when `packed_lhs` is given,
// the lhs blocks taken from it instead of packed here.
template <typename T, int LhsOrder, int RhsOrder>
void EigenBlockedRun(const EigenBlocking<T>& bl, const T* a, int lda,
                     const T* b, int ldb, const T* packed_lhs, T beta, T* c,
                     int ldc) {
  using Index = Eigen::Index;
  using Traits = typename EigenBlocking<T>::Traits;
  using LhsMapper = Eigen::internal::const_blas_data_mapper<T, Index, LhsOrder>;
  using RhsMapper = Eigen::internal::const_blas_data_mapper<T, Index, RhsOrder>;
  using ResMapper = Eigen::internal::blas_data_mapper<T, Index, Eigen::ColMajor,
                                                      Eigen::Unaligned, 1>;
  LhsMapper lhs(b, ldb);
  RhsMapper rhs(a, lda);
  ResMapper res(c, ldc);
  EigenLhsPacker<T, LhsOrder> pack_lhs;
  Eigen::internal::gemm_pack_rhs<T, Index, RhsMapper, Traits::nr, RhsOrder>
      pack_rhs;
  Eigen::internal::gebp_kernel<T, T, Index, ResMapper, Traits::mr, Traits::nr,
                               false, false>
      gebp;
  thread_local std::vector<T, Eigen::aligned_allocator<T>> block_a, block_b;
  if (packed_lhs == nullptr) block_a.resize(static_cast<size_t>(bl.kc * bl.mc));
  block_b.resize(static_cast<size_t>(bl.kc * bl.nc));
  // As run(): the rhs block is packed once when it is the whole rhs.
  const bool pack_rhs_once =
      bl.mc != bl.rows && bl.kc == bl.depth && bl.nc == bl.cols;
  for (Index i2 = 0; i2 < bl.rows; i2 += bl.mc) {
    const Index mc = std::min(i2 + bl.mc, bl.rows) - i2;
    for (Index k2 = 0; k2 < bl.depth; k2 += bl.kc) {
      const Index kc = std::min(k2 + bl.kc, bl.depth) - k2;
      const T* block = packed_lhs;
      if (packed_lhs == nullptr) {
        pack_lhs(block_a.data(), lhs.getSubMapper(i2, k2), kc, mc);
        block = block_a.data();
      }
      for (Index j2 = 0; j2 < bl.cols; j2 += bl.nc) {
        const Index nc = std::min(j2 + bl.nc, bl.cols) - j2;
        if (!pack_rhs_once || i2 == 0) {
          pack_rhs(block_b.data(), rhs.getSubMapper(k2, j2), kc, nc);
        }
        if (beta == T(0) && k2 == 0) {
          // This block of C (our rows j2.., columns i2..) is zero before
          // the kernel's first addition into it, as after C.setZero().
          for (Index r = j2; r < j2 + nc; ++r)
            std::fill_n(c + r * ldc + i2, mc, T(0));
        }
        gebp(res.getSubMapper(i2, j2), block, block_b.data(), mc, kc, nc, T(1));
      }
      if (packed_lhs != nullptr) {
        packed_lhs += EigenBlocking<T>::BlockSize(mc, kc);
      }
    }
  }
}

// Row-major C(m×n) = beta·C + op(A)·op(B) with EigenGemm's bits.
template <typename T>
void EigenBlockedGemm(bool trans_a, bool trans_b, int m, int n, int k,
                      const T* a, int lda, const T* b, int ldb, T beta, T* c,
                      int ldc) {
  const EigenBlocking<T> bl(m, n, k);
  constexpr int kCol = Eigen::ColMajor, kRow = Eigen::RowMajor;
  if (!trans_b && !trans_a) {
    EigenBlockedRun<T, kCol, kCol>(bl, a, lda, b, ldb, nullptr, beta, c, ldc);
  } else if (!trans_b) {
    EigenBlockedRun<T, kCol, kRow>(bl, a, lda, b, ldb, nullptr, beta, c, ldc);
  } else if (!trans_a) {
    EigenBlockedRun<T, kRow, kCol>(bl, a, lda, b, ldb, nullptr, beta, c, ldc);
  } else {
    EigenBlockedRun<T, kRow, kRow>(bl, a, lda, b, ldb, nullptr, beta, c, ldc);
  }
}

// Elements EigenPackB writes for products of these shapes.
template <typename T>
size_t EigenPackedSize(int m, int n, int k) {
  return EigenBlocking<T>(m, n, k).PackedSize();
}

// Packs B (k×n, row stride ldb) for products with m-row A's into `out`
// (EigenPackedSize elements, 64-byte aligned): every lhs block that
// EigenBlockedGemm(false, false, m, n, k, ...) packs, in its loop order.
template <typename T>
void EigenPackB(int m, int n, int k, const T* b, int ldb, T* out) {
  using Index = Eigen::Index;
  const EigenBlocking<T> bl(m, n, k);
  Eigen::internal::const_blas_data_mapper<T, Index, Eigen::ColMajor> lhs(b,
                                                                         ldb);
  EigenLhsPacker<T, Eigen::ColMajor> pack_lhs;
  for (Index i2 = 0; i2 < bl.rows; i2 += bl.mc) {
    const Index mc = std::min(i2 + bl.mc, bl.rows) - i2;
    for (Index k2 = 0; k2 < bl.depth; k2 += bl.kc) {
      const Index kc = std::min(k2 + bl.kc, bl.depth) - k2;
      pack_lhs(out, lhs.getSubMapper(i2, k2), kc, mc);
      out += EigenBlocking<T>::BlockSize(mc, kc);
    }
  }
}

// C(m×n) = beta·C + A(m×k)·B with B packed by EigenPackB(m, n, k, ...).
template <typename T>
void EigenGemmPackedB(int m, int n, int k, const T* a, int lda,
                      const T* packed_b, T beta, T* c, int ldc) {
  EigenBlockedRun<T, Eigen::ColMajor, Eigen::ColMajor>(
      EigenBlocking<T>(m, n, k), a, lda, nullptr, 0, packed_b, beta, c, ldc);
}

}  // namespace cpu_internal
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CPU_EIGEN_GEMM_H_
