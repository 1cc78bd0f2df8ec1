// CPU GEMM through Eigen, tiled over output columns with a fixed tile width so
// the bits never depend on the thread count.
#include <Eigen/Core>

#include "engine/numerics/context.h"
#include "engine/numerics/thread_pool.h"

namespace driftscope {

namespace {

// Output columns per tile. Fixed: changing it changes results.
constexpr int kTileCols = 256;

template <typename T>
using RowMat =
    Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <typename T>
using ConstMap = Eigen::Map<const RowMat<T>, 0, Eigen::OuterStride<>>;
template <typename T>
using MutMap = Eigen::Map<RowMat<T>, 0, Eigen::OuterStride<>>;

template <typename T>
void GemmTile(bool trans_a, bool trans_b, int m, int n, int k, const T* a,
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

}  // namespace

Context::Context(const Profile& profile) : profile_(profile) {
  Eigen::setNbThreads(1);
  if (profile_.threads > 1)
    pool_ = std::make_unique<ThreadPool>(profile_.threads);
}

Context::~Context() = default;

template <typename T>
void Context::Gemm(bool trans_a, bool trans_b, int m, int n, int k, const T* a,
                   int lda, const T* b, int ldb, T beta, T* c, int ldc) const {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (beta == T(0)) {
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) c[static_cast<long>(i) * ldc + j] = T(0);
    }
    return;
  }
  const int tiles = (n + kTileCols - 1) / kTileCols;
  auto tile = [&](int t) {
    const int j0 = t * kTileCols;
    const int nt = std::min(kTileCols, n - j0);
    // Column block j0..j0+nt of op(B): rows of B when trans_b, else columns.
    const T* bt = trans_b ? b + static_cast<long>(j0) * ldb : b + j0;
    GemmTile(trans_a, trans_b, m, nt, k, a, lda, bt, ldb, beta, c + j0, ldc);
  };
  if (pool_ && tiles > 1) {
    pool_->ParallelFor(tiles, tile);
  } else {
    for (int t = 0; t < tiles; ++t) tile(t);
  }
}

template void Context::Gemm<float>(bool, bool, int, int, int, const float*, int,
                                   const float*, int, float, float*, int) const;
template void Context::Gemm<double>(bool, bool, int, int, int, const double*,
                                    int, const double*, int, double, double*,
                                    int) const;

}  // namespace driftscope
