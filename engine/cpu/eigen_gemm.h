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

}  // namespace cpu_internal
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CPU_EIGEN_GEMM_H_
