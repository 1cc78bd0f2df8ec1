// The GEMMs of gemm=sequential and gemm=pairwise: every output element is
// the scalar definition of its reduction order (context.h, Context::Gemm),
//   sequential: s = ((0 + a0·b0) + a1·b1) + ...
//   pairwise:   numpy's cascade over the products: blocks of at most 8
//               terms summed left to right from 0, halves (split at a
//               multiple of 8) added,
// each product and each sum rounded on its own (no FMA: the engine builds
// with -ffp-contract=off, and the kernel below multiplies and adds with
// separate vector instructions). Lanes never mix, so the bits are those of
// the scalar loops whatever the vector width: the result is the same for
// every ISA level, only faster on wider ones.
//
// How: A and B are packed (zero-padded) into panels of kRows rows of A and
// kCols columns of B; a register tile of kRows × kCols accumulators runs
// over the k terms, one vector multiply and one vector add per term and
// accumulator. Pairwise walks its summation tree depth first per tile: each
// leaf (≤ 8 terms) in registers, inner nodes combined with a small stack of
// tiles in memory. Header so each ISA build instantiates its own copy (see
// kernel_table.h). Internal to engine/cpu; one thread per call (scratch is
// thread-local).
#ifndef DRIFTSCOPE_ENGINE_CPU_ORDERED_GEMM_H_
#define DRIFTSCOPE_ENGINE_CPU_ORDERED_GEMM_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

namespace driftscope {
namespace cpu_internal {

#if defined(__AVX512F__)
constexpr int kOrderedVecBytes = 64;
constexpr int kOrderedRows = 8;  // 24 accumulators of 32 registers
#elif defined(__AVX__)
constexpr int kOrderedVecBytes = 32;
constexpr int kOrderedRows = 4;  // 12 accumulators of 16 registers
#else
constexpr int kOrderedVecBytes = 16;
constexpr int kOrderedRows = 4;
#endif
constexpr int kOrderedVecs = 3;  // vectors per tile row

template <typename T>
struct OrderedKernel {
  typedef T Vec __attribute__((vector_size(kOrderedVecBytes)));
  static constexpr int kLanes = kOrderedVecBytes / sizeof(T);
  static constexpr int kRows = kOrderedRows;
  static constexpr int kCols = kOrderedVecs * kLanes;
  static constexpr int kTile = kRows * kCols;

  // The cascade as a post-order program over its leaves, in term order:
  // leaf i has leaves[i] terms and is followed by adds[i] combinations.
  struct Tree {
    std::vector<int> leaves, adds;
    int depth = 0;  // stack tiles needed
  };
  static void BuildTree(int count, int level, Tree* tree) {
    tree->depth = std::max(tree->depth, level + 1);
    if (count <= 8) {
      tree->leaves.push_back(count);
      tree->adds.push_back(0);
      return;
    }
    const int half = (count / 2 + 7) / 8 * 8;
    BuildTree(half, level, tree);
    BuildTree(count - half, level + 1, tree);
    ++tree->adds.back();
  }

  // acc = Σ over terms [p0, p0 + count) in order, from 0. ap: kRows values
  // per term; bp: kCols values per term.
  static void Leaf(const T* __restrict ap, const T* __restrict bp, int p0,
                   int count, Vec acc[kRows][kOrderedVecs]) {
    for (int r = 0; r < kRows; ++r)
      for (int v = 0; v < kOrderedVecs; ++v) acc[r][v] = Vec{};
    for (int p = p0; p < p0 + count; ++p) {
      const Vec* b = reinterpret_cast<const Vec*>(bp + int64_t{p} * kCols);
      const Vec b0 = b[0], b1 = b[1], b2 = b[2];
      const T* a = ap + int64_t{p} * kRows;
      for (int r = 0; r < kRows; ++r) {
        const T ar = a[r];
        acc[r][0] = acc[r][0] + b0 * ar;
        acc[r][1] = acc[r][1] + b1 * ar;
        acc[r][2] = acc[r][2] + b2 * ar;
      }
    }
  }

  // One kRows × kCols tile of the sums over all k terms, into out (dense).
  static void Tile(const T* ap, const T* bp, int k, const Tree* tree,
                   Vec* stack, T* out) {
    Vec acc[kRows][kOrderedVecs];
    if (tree == nullptr) {
      Leaf(ap, bp, 0, k, acc);
    } else {
      // acc is the top of the stack; stack[0..top) the tiles below it.
      int top = 0, p = 0;
      for (size_t i = 0; i < tree->leaves.size(); ++i) {
        if (i > 0) {
          Vec* s = stack + static_cast<size_t>(top++) * kRows * kOrderedVecs;
          for (int r = 0; r < kRows; ++r)
            for (int v = 0; v < kOrderedVecs; ++v)
              s[r * kOrderedVecs + v] = acc[r][v];
        }
        Leaf(ap, bp, p, tree->leaves[i], acc);
        p += tree->leaves[i];
        for (int j = 0; j < tree->adds[i]; ++j) {
          // left + right; IEEE addition commutes, so the order is exact.
          const Vec* s =
              stack + static_cast<size_t>(--top) * kRows * kOrderedVecs;
          for (int r = 0; r < kRows; ++r)
            for (int v = 0; v < kOrderedVecs; ++v)
              acc[r][v] = s[r * kOrderedVecs + v] + acc[r][v];
        }
      }
    }
    Vec* o = reinterpret_cast<Vec*>(out);
    for (int r = 0; r < kRows; ++r)
      for (int v = 0; v < kOrderedVecs; ++v)
        o[r * kOrderedVecs + v] = acc[r][v];
  }
};

// A buffer of n values aligned for the kernel's vectors.
template <typename T>
struct OrderedScratch {
  T* data = nullptr;
  size_t size = 0;
  ~OrderedScratch() { ::operator delete (data, std::align_val_t{64}); }
  T* Get(size_t n) {
    if (n > size) {
      ::operator delete (data, std::align_val_t{64});
      data =
          static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{64}));
      size = n;
    }
    return data;
  }
};

// Row-major C(m×n) = beta·C + op(A)·op(B) in sequential or pairwise order
// (beta 0 or 1: C = s, or C + s).
template <typename T>
void OrderedGemm(bool pairwise, bool trans_a, bool trans_b, int m, int n, int k,
                 const T* a, int lda, const T* b, int ldb, T beta, T* c,
                 int ldc) {
  using K = OrderedKernel<T>;
  using Vec = typename K::Vec;
  constexpr int R = K::kRows, W = K::kCols;
  const int row_blocks = (m + R - 1) / R, col_panels = (n + W - 1) / W;
  thread_local OrderedScratch<T> a_store, b_store, out_store;
  thread_local OrderedScratch<Vec> stack_store;
  thread_local typename K::Tree tree;
  // A as row blocks of R rows, term-major within a block (zero rows pad).
  T* ap = a_store.Get(static_cast<size_t>(row_blocks) * R * k);
  for (int ib = 0; ib < row_blocks; ++ib) {
    T* blk = ap + static_cast<size_t>(ib) * R * k;
    const int rows = std::min(R, m - ib * R);
    for (int p = 0; p < k; ++p) {
      T* dst = blk + static_cast<size_t>(p) * R;
      for (int r = 0; r < rows; ++r) {
        const int i = ib * R + r;
        dst[r] = trans_a ? a[int64_t{p} * lda + i] : a[int64_t{i} * lda + p];
      }
      for (int r = rows; r < R; ++r) dst[r] = T(0);
    }
  }
  // B as column panels of W columns, term-major (zero columns pad).
  T* bp = b_store.Get(static_cast<size_t>(col_panels) * W * k);
  for (int jp = 0; jp < col_panels; ++jp) {
    T* pan = bp + static_cast<size_t>(jp) * W * k;
    const int j0 = jp * W, cols = std::min(W, n - j0);
    for (int p = 0; p < k; ++p) {
      T* dst = pan + static_cast<size_t>(p) * W;
      if (trans_b) {
        for (int j = 0; j < cols; ++j) dst[j] = b[int64_t{j0 + j} * ldb + p];
      } else {
        std::memcpy(dst, b + int64_t{p} * ldb + j0, sizeof(T) * cols);
      }
      for (int j = cols; j < W; ++j) dst[j] = T(0);
    }
  }
  const typename K::Tree* t = nullptr;
  if (pairwise) {
    tree.leaves.clear();
    tree.adds.clear();
    tree.depth = 0;
    K::BuildTree(k, 0, &tree);
    t = &tree;
  }
  Vec* stack =
      stack_store.Get(static_cast<size_t>(tree.depth + 1) * R * kOrderedVecs);
  T* out = out_store.Get(K::kTile);
  // Column panel outer: its k×W values stay in cache across the row blocks.
  for (int jp = 0; jp < col_panels; ++jp) {
    const int j0 = jp * W, cols = std::min(W, n - j0);
    const T* pan = bp + static_cast<size_t>(jp) * W * k;
    for (int ib = 0; ib < row_blocks; ++ib) {
      K::Tile(ap + static_cast<size_t>(ib) * R * k, pan, k, t, stack, out);
      const int rows = std::min(R, m - ib * R);
      for (int r = 0; r < rows; ++r) {
        T* ci = c + int64_t{ib * R + r} * ldc + j0;
        const T* o = out + r * W;
        if (beta == T(0)) {
          std::memcpy(ci, o, sizeof(T) * cols);
        } else {
          for (int j = 0; j < cols; ++j) ci[j] = ci[j] + o[j];
        }
      }
    }
  }
}

}  // namespace cpu_internal
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CPU_ORDERED_GEMM_H_
