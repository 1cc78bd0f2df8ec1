// One row-major Eigen GEMM, as a header so that each ISA build instantiates
// its own copy (see kernel_table.h). Internal to engine/cpu.
#ifndef DRIFTSCOPE_ENGINE_CPU_EIGEN_GEMM_H_
#define DRIFTSCOPE_ENGINE_CPU_EIGEN_GEMM_H_

#include <Eigen/Core>

namespace driftscope {
namespace cpu_internal {

template <typename T>
using RowMat =
    Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstMap = Eigen::Map<const RowMat<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using MutMap = Eigen::Map<RowMat<T>, 0, Eigen::OuterStride<>>;

// Below Eigen's GEMM path (m + n + k < 20: a coefficient-wise "lazy"
// product) and for vector shapes (m == 1 or n == 1: GEMV), Eigen's results
// depend on the ALIGNMENT of the operands, because its vectorized loops peel
// unaligned heads. Those shapes go through this plain loop instead (k summed
// left to right), so a product's bits never depend on where its data sits.
template <typename T>
bool NeedsPlainLoop(int m, int n, int k) {
  return m + n + k < 24 || m == 1 || n == 1;
}

template <typename T>
void PlainGemm(bool trans_a, bool trans_b, int m, int n, int k, const T* a,
               int lda, const T* b, int ldb, T beta, T* c, int ldc) {
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      T s = T(0);
      for (int p = 0; p < k; ++p) {
        const T av = trans_a ? a[static_cast<long>(p) * lda + i]
                             : a[static_cast<long>(i) * lda + p];
        const T bv = trans_b ? b[static_cast<long>(j) * ldb + p]
                             : b[static_cast<long>(p) * ldb + j];
        s += av * bv;
      }
      T& cij = c[static_cast<long>(i) * ldc + j];
      cij = beta == T(0) ? s : cij + s;
    }
  }
}

template <typename T>
void EigenGemm(bool trans_a, bool trans_b, int m, int n, int k, const T* a,
               int lda, const T* b, int ldb, T beta, T* c, int ldc) {
  if (NeedsPlainLoop<T>(m, n, k)) {
    PlainGemm(trans_a, trans_b, m, n, k, a, lda, b, ldb, beta, c, ldc);
    return;
  }
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

}  // namespace cpu_internal
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CPU_EIGEN_GEMM_H_
