// Internal to engine/layers: constructors of the concrete layers and the
// time-major bookkeeping the three recurrent layers share.
//
// Recurrent layers keep every per-step buffer TIME-MAJOR in PROCESSING order:
// row block k (of `batch` rows) belongs to the k-th step the loop runs, which
// reads input time t = go_backwards ? T-1-k : k. That makes x·W one GEMM over
// all T·B rows before the loop, and dW = Xᵀ·δA, dR = H_prevᵀ·δA, δX = δA·Wᵀ
// single GEMMs after it. Not thread-safe; each layer is used by one thread.
#ifndef DRIFTSCOPE_ENGINE_LAYERS_LAYER_INTERNAL_H_
#define DRIFTSCOPE_ENGINE_LAYERS_LAYER_INTERNAL_H_

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "engine/layers/layer.h"

namespace driftscope {

template <typename T>
std::unique_ptr<Layer<T>> NewLstmLayer(const LayerSpec& spec,
                                       const ActivationShape& in);
template <typename T>
std::unique_ptr<Layer<T>> NewGruLayer(const LayerSpec& spec,
                                      const ActivationShape& in);
template <typename T>
std::unique_ptr<Layer<T>> NewSimpleRnnLayer(const LayerSpec& spec,
                                            const ActivationShape& in);
// LSTM, GRU and SimpleRNN with per-gate dropout masks (UsesGateMasks),
// computed as Keras' implementation 1.
template <typename T>
std::unique_ptr<Layer<T>> NewGateMaskedRnnLayer(const LayerSpec& spec,
                                                const ActivationShape& in);
// keras.layers.Bidirectional around the forward and backward copies.
template <typename T>
std::unique_ptr<Layer<T>> NewBidirectionalLayer(
    const LayerSpec& spec, const ActivationShape& in,
    std::unique_ptr<Layer<T>> forward, std::unique_ptr<Layer<T>> backward);
template <typename T>
std::unique_ptr<Layer<T>> NewDenseLayer(const LayerSpec& spec,
                                        const ActivationShape& in);
// keras.layers.Embedding (embedding.cc): input (B, T, 1) token ids.
template <typename T>
std::unique_ptr<Layer<T>> NewEmbeddingLayer(const LayerSpec& spec,
                                            const ActivationShape& in);

// Keras weight shapes of `spec` on input `in`, get_weights() order.
std::vector<WeightShape> LayerWeightShapes(const LayerSpec& spec,
                                           const ActivationShape& in);
ActivationShape LayerOutputShape(const LayerSpec& spec,
                                 const ActivationShape& in);

// 64-byte aligned storage for the layers' buffers. Some of Eigen's
// vectorized paths handle an unaligned head with scalar code whose bits
// differ from the packet path (seen here with the GEMM's small-shape paths
// before the Context stopped using them), so a buffer's address must never
// decide the bits: with every buffer 64-byte aligned, which element takes
// which path depends only on the shapes.
template <typename T>
struct AlignedAllocator {
  using value_type = T;
  static constexpr std::align_val_t kAlign{64};
  AlignedAllocator() = default;
  template <typename U>
  AlignedAllocator(const AlignedAllocator<U>&) {}  // NOLINT
  T* allocate(size_t n) {
    return static_cast<T*>(::operator new(n * sizeof(T), kAlign));
  }
  void deallocate(T* p, size_t) { ::operator delete(p, kAlign); }
  template <typename U>
  bool operator==(const AlignedAllocator<U>&) const {
    return true;
  }
  template <typename U>
  bool operator!=(const AlignedAllocator<U>&) const {
    return false;
  }
};
template <typename T>
using Buffer = std::vector<T, AlignedAllocator<T>>;

// Grows v to at least n elements. Buffers only grow, so Forward/Backward
// allocate nothing once the largest batch has been seen.
template <typename T>
void Reserve(Buffer<T>* v, int64_t n) {
  if (static_cast<int64_t>(v->size()) < n) v->resize(static_cast<size_t>(n));
}

// Asks for [p, p + n) to be brought into cache. The per-step loops walk
// caches written long before (a whole sequence is tens of MB), one sample
// row at a time, in short pieces the hardware prefetcher picks up late;
// fetching the next row while this one is computed hides the misses.
template <typename T>
inline void PrefetchRow(const T* p, int64_t n) {
  const char* c = reinterpret_cast<const char*>(p);
  const int64_t bytes = n * static_cast<int64_t>(sizeof(T));
  for (int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off);
}

// Copies x (batch, T, D) batch-major into xp (T·batch, D) time-major,
// processing order.
template <typename T>
void GatherTimeMajor(const T* x, int batch, int steps, int dim, bool backwards,
                     T* xp) {
  for (int k = 0; k < steps; ++k) {
    const int t = backwards ? steps - 1 - k : k;
    for (int b = 0; b < batch; ++b)
      std::memcpy(xp + (static_cast<int64_t>(k) * batch + b) * dim,
                  x + (static_cast<int64_t>(b) * steps + t) * dim,
                  sizeof(T) * dim);
  }
}
// The inverse of GatherTimeMajor.
template <typename T>
void ScatterBatchMajor(const T* xp, int batch, int steps, int dim,
                       bool backwards, T* x) {
  for (int k = 0; k < steps; ++k) {
    const int t = backwards ? steps - 1 - k : k;
    for (int b = 0; b < batch; ++b)
      std::memcpy(x + (static_cast<int64_t>(b) * steps + t) * dim,
                  xp + (static_cast<int64_t>(k) * batch + b) * dim,
                  sizeof(T) * dim);
  }
}

// The input gradient of an RNN layer: dx (batch-major) = δA · Wᵀ, from the
// time-major pre-activation gradients δA (rows = steps·batch, width g) and
// the kernel W (dim × g); one GEMM over all steps, then the reordering.
template <typename T>
void InputGradient(const Context& ctx, const T* da, int64_t rows, int g,
                   const T* w, int dim, int batch, int steps, bool backwards,
                   Buffer<T>* scratch, T* dx) {
  Reserve(scratch, rows * dim);
  ctx.Gemm<T>(false, true, static_cast<int>(rows), dim, g, da, g, w, g, T(0),
              scratch->data(), dim);
  ScatterBatchMajor(scratch->data(), batch, steps, dim, backwards, dx);
}

// at (cols × rows) = aᵀ for a (rows × cols), both row-major and dense.
// Blocked so that both sides are walked a cache line at a time.
template <typename T>
void Transpose(const T* a, int rows, int cols, T* at) {
  constexpr int kBlock = 16;
  for (int r0 = 0; r0 < rows; r0 += kBlock) {
    const int r1 = r0 + kBlock < rows ? r0 + kBlock : rows;
    for (int c0 = 0; c0 < cols; c0 += kBlock) {
      const int c1 = c0 + kBlock < cols ? c0 + kBlock : cols;
      for (int c = c0; c < c1; ++c)
        for (int r = r0; r < r1; ++r)
          at[static_cast<int64_t>(c) * rows + r] =
              a[static_cast<int64_t>(r) * cols + c];
    }
  }
}

// out[j] = Σ_o (Σ_i d[o·so + i·si + j]) for j < cols: the inner sum runs
// over i = 0..inner-1 in order, the outer over o = 0..outer-1 in order. Used
// for bias gradients: inner = batch, outer = time ("batch, then time").
// scratch holds cols values.
template <typename T>
void SumRows(const T* d, int outer, int64_t so, int inner, int64_t si, int cols,
             T* scratch, T* out) {
  for (int j = 0; j < cols; ++j) out[j] = T(0);
  for (int o = 0; o < outer; ++o) {
    const T* base = d + o * so;
    for (int j = 0; j < cols; ++j) scratch[j] = base[j];
    for (int i = 1; i < inner; ++i) {
      const T* row = base + i * si;
      for (int j = 0; j < cols; ++j) scratch[j] += row[j];
    }
    for (int j = 0; j < cols; ++j) out[j] += scratch[j];
  }
}

// The two halves of SumRows, for callers that produce the rows one at a
// time: sum = row (first) or sum + row, for the rows of one outer index in
// inner order; then SumSteps adds the `outer` sums (each `cols` wide,
// contiguous) in order. Together: the bits of SumRows.
template <typename T>
void AccumulateRow(int cols, bool first, const T* __restrict row,
                   T* __restrict sum) {
  if (first) {
    for (int j = 0; j < cols; ++j) sum[j] = row[j];
  } else {
    for (int j = 0; j < cols; ++j) sum[j] += row[j];
  }
}
template <typename T>
void SumSteps(const T* sums, int outer, int cols, T* out) {
  for (int j = 0; j < cols; ++j) out[j] = T(0);
  for (int o = 0; o < outer; ++o) {
    const T* s = sums + static_cast<int64_t>(o) * cols;
    for (int j = 0; j < cols; ++j) out[j] += s[j];
  }
}

// Adds bias (cols) to each of `rows` rows of m (row stride ld).
template <typename T>
void AddBiasRows(T* m, int64_t rows, int cols, int64_t ld, const T* bias) {
  for (int64_t r = 0; r < rows; ++r) {
    T* row = m + r * ld;
    for (int j = 0; j < cols; ++j) row[j] = row[j] + bias[j];
  }
}

// Writes the RNN output from hs (T+1 blocks of (batch, U), block 0 = the
// zero initial state): the whole sequence in processing order, or the last h.
template <typename T>
void WriteRnnOutput(const T* hs, int batch, int steps, int units,
                    bool return_sequences, T* y) {
  const int64_t block = static_cast<int64_t>(batch) * units;
  if (!return_sequences) {
    std::memcpy(y, hs + steps * block, sizeof(T) * block);
    return;
  }
  for (int k = 0; k < steps; ++k)
    for (int b = 0; b < batch; ++b)
      std::memcpy(y + (static_cast<int64_t>(b) * steps + k) * units,
                  hs + (k + 1) * block + static_cast<int64_t>(b) * units,
                  sizeof(T) * units);
}

// dh (batch, U) = carried + output gradient arriving at processing step k
// (only the last step receives one without return_sequences).
template <typename T>
void AddOutputGrad(const T* dy, int batch, int steps, int units,
                   bool return_sequences, int k, const T* carried, T* dh) {
  for (int b = 0; b < batch; ++b) {
    T* out = dh + static_cast<int64_t>(b) * units;
    const T* c = carried + static_cast<int64_t>(b) * units;
    const T* g = nullptr;
    if (return_sequences) {
      g = dy + (static_cast<int64_t>(b) * steps + k) * units;
    } else if (k == steps - 1) {
      g = dy + static_cast<int64_t>(b) * units;
    }
    if (g == nullptr) {
      for (int u = 0; u < units; ++u) out[u] = c[u];
    } else {
      for (int u = 0; u < units; ++u) out[u] = g[u] + c[u];
    }
  }
}

// Timestep masks (Layer::SetTimestepMask). keep is (batch, steps) in time
// order; the layers walk processing steps k, so the time read is that of
// GatherTimeMajor. Every helper is a no-op without a mask (keep null).
//
// Whether sample b's processing step k is used.
inline bool StepKept(const uint8_t* keep, int b, int steps, int k,
                     bool backwards) {
  if (keep == nullptr) return true;
  const int t = backwards ? steps - 1 - k : k;
  return keep[static_cast<int64_t>(b) * steps + t] != 0;
}

// For every sample whose step k is skipped: dst row b ← src row b (width n,
// contiguous rows). Keras keeps the state there: new state ← previous one.
template <typename T>
void CopySkippedRows(const uint8_t* keep, int batch, int steps, int k,
                     bool backwards, int n, const T* src, T* dst) {
  if (keep == nullptr) return;
  for (int b = 0; b < batch; ++b) {
    if (StepKept(keep, b, steps, k, backwards)) continue;
    std::memcpy(dst + static_cast<int64_t>(b) * n,
                src + static_cast<int64_t>(b) * n, sizeof(T) * n);
  }
}

// For every sample whose step k is skipped: row b (width n, row stride ld)
// of m ← 0. Used on pre-activation gradients: a skipped step computes
// nothing that reaches the loss.
template <typename T>
void ZeroSkippedRows(const uint8_t* keep, int batch, int steps, int k,
                     bool backwards, int n, int64_t ld, T* m) {
  if (keep == nullptr) return;
  for (int b = 0; b < batch; ++b) {
    if (StepKept(keep, b, steps, k, backwards)) continue;
    std::memset(m + static_cast<int64_t>(b) * ld, 0, sizeof(T) * n);
  }
}

// zero_output_for_mask: the outputs of skipped steps (y as WriteRnnOutput
// writes it; without return_sequences the last processing step's) are
// zeros. With `dy`, the same positions of an output gradient are zeroed
// into `out` (those outputs are constants) and out is returned; else dy.
template <typename T>
void ZeroSkippedOutputs(const uint8_t* keep, int batch, int steps, int units,
                        bool backwards, bool return_sequences, T* y) {
  if (keep == nullptr) return;
  for (int b = 0; b < batch; ++b) {
    for (int k = return_sequences ? 0 : steps - 1; k < steps; ++k) {
      if (StepKept(keep, b, steps, k, backwards)) continue;
      const int64_t row = return_sequences ? int64_t{b} * steps + k : b;
      std::memset(y + row * units, 0, sizeof(T) * units);
    }
  }
}
template <typename T>
const T* MaskedOutputGrad(const uint8_t* keep, bool zero_output, int batch,
                          int steps, int units, bool backwards,
                          bool return_sequences, const T* dy, Buffer<T>* out) {
  if (keep == nullptr || !zero_output) return dy;
  const int64_t n = int64_t{batch} * (return_sequences ? steps : 1) *
                    static_cast<int64_t>(units);
  Reserve(out, n);
  std::memcpy(out->data(), dy, sizeof(T) * n);
  ZeroSkippedOutputs(keep, batch, steps, units, backwards, return_sequences,
                     out->data());
  return out->data();
}

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_LAYERS_LAYER_INTERNAL_H_
