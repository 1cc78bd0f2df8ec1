// Data movement and sums the layers share (the device side of
// engine/layers/layer_internal.h): batch gathering, time-major reordering,
// bias rows, and the bias-gradient sum "batch, then time". Each functor
// handles one index of a launch of size() threads.
#ifndef DRIFTSCOPE_ENGINE_CUDA_SEQUENCE_KERNELS_H_
#define DRIFTSCOPE_ENGINE_CUDA_SEQUENCE_KERNELS_H_

#include "engine/cuda/ds_hd.h"

namespace driftscope {
namespace dev {

// dst row r = src row idx[r], rows of `width` floats; one thread per value.
struct GatherRowsArgs {
  const float* src = nullptr;
  const int32_t* idx = nullptr;
  int rows = 0;
  int64_t width = 0;
  float* dst = nullptr;
  DS_HD void operator()(int64_t e) const {
    const int64_t r = e / width, j = e % width;
    dst[e] = src[static_cast<int64_t>(idx[r]) * width + j];
  }
  int64_t size() const { return rows * width; }
};

// Batch-major (batch, steps, dim) <-> time-major in processing order
// (steps·batch, dim), where processing step k reads time
// t = backwards ? steps−1−k : k. One thread per value of the time-major side.
struct TimeMajorArgs {
  const float* src = nullptr;
  float* dst = nullptr;
  int batch = 0, steps = 0, dim = 0;
  bool backwards = false;
  bool to_time_major = true;  // false: time-major src to batch-major dst
  DS_HD void operator()(int64_t e) const {
    const int64_t d = e % dim, row = e / dim;
    const int64_t k = row / batch, b = row % batch;
    const int64_t t = backwards ? steps - 1 - k : k;
    const int64_t bm = (b * steps + t) * dim + d;
    if (to_time_major) {
      dst[e] = src[bm];
    } else {
      dst[bm] = src[e];
    }
  }
  int64_t size() const { return static_cast<int64_t>(batch) * steps * dim; }
};

// m[r][j] = m[r][j] + bias[j] for `rows` rows of `cols` (row stride ld).
struct AddBiasArgs {
  float* m = nullptr;
  int64_t rows = 0;
  int cols = 0;
  int64_t ld = 0;
  const float* bias = nullptr;
  DS_HD void operator()(int64_t e) const {
    const int64_t r = e / cols, j = e % cols;
    m[r * ld + j] = Add(m[r * ld + j], bias[j]);
  }
  int64_t size() const { return rows * cols; }
};

// out[j] = Σ_o (Σ_i d[o·so + i·si + j]): the inner sum over i in order, the
// outer over o in order, from 0 (the CPU's SumRows order). One thread per
// column j. Bias gradients: inner = batch, outer = time.
struct BiasGradArgs {
  const float* d = nullptr;
  int outer = 0;
  int64_t so = 0;
  int inner = 0;
  int64_t si = 0;
  int cols = 0;
  float* out = nullptr;
  DS_HD void operator()(int64_t j) const {
    float total = 0.0f;
    for (int o = 0; o < outer; ++o) {
      const float* base = d + o * so + j;
      float s = base[0];
      for (int i = 1; i < inner; ++i) s = Add(s, base[i * si]);
      total = Add(total, s);
    }
    out[j] = total;
  }
  int64_t size() const { return cols; }
};

}  // namespace dev
}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CUDA_SEQUENCE_KERNELS_H_
