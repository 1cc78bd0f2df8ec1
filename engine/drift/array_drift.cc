// One fused pass visits every element once and adds it to its group (the
// array, or one timestep of the per-timestep curves): lane sums of the open
// block of 256, running extremes and counts, and a fine histogram key per
// element (kernels: array_drift_kernels.h portable, array_drift_avx2.h, and
// array_drift_avx512.h, chosen at run time). A second pass runs only when a
// median falls in a histogram key that holds more than one value, and then
// keeps only the elements of that key (a vectorized filter on the relative
// error admits a superset; the exact key decides).
//
// The keys carry more than the medians: the exponent sum of the relative
// errors is read off the significant-bits histogram, and for arrays of one
// dtype the number of differing elements off the ULP histogram's key 0, so
// the kernels do not count them per element. Keys are buffered per group
// and counted a thousand at a time; the SIMD kernels leave out key 0
// (identical elements, often most of them) and the group counts those in
// bulk.
//
// Per-timestep curves of an (N, T, U) array: each t is its own group, fed
// its rows in order of i. When the T groups' working histograms fit, the
// array is walked in index order, a tile of 256/U rows at a time (each group
// gets about a block while its state is in L1; the tile's rows are prefetched
// as separate streams); otherwise t-major with one group at a time, staging
// short rows into a contiguous buffer. Either walk gives every group the same
// sequence, and the kernels cut a group's sequence into the same blocks and
// lanes wherever a run starts, so results do not depend on the walk.
//
// The pieces: array_drift_dispatch.h picks the kernel, array_drift_accumulate.h
// feeds and closes groups, array_drift_medians.h finds the exact medians and
// a group's DriftStats, and array_drift_traversal.h walks the array; this
// file puts them together.
#include "engine/drift/array_drift.h"

#include <cfloat>
#include <cmath>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/drift/array_drift_accumulate.h"
#include "engine/drift/array_drift_dispatch.h"
#include "engine/drift/array_drift_internal.h"
#include "engine/drift/array_drift_kernels.h"
#include "engine/drift/array_drift_medians.h"
#include "engine/drift/array_drift_traversal.h"

namespace driftscope {
namespace drift_internal {
namespace {

using drift_kernels::BitCast;

constexpr size_t kMaxGroupBytes = size_t{64} << 20;

template <typename TA, typename TR>
absl::Status Compare(const NdArray& a_arr, const NdArray& r_arr,
                     const DriftOptions& o, KernelIsa isa, ArrayDrift* out) {
  const TA* a = a_arr.data<TA>();
  const TR* r = r_arr.data<TR>();
  const int64_t n = a_arr.size();
  constexpr bool kWide = drift_kernels::kWide<TA, TR>;
  Params p;
  p.atol = o.atol;
  p.rtol = o.rtol;
  p.cap = kWide ? 53 : 24;
  p.min_rel = std::ldexp(1.0, -p.cap);
  p.c_base = BitCast<uint64_t>(p.min_rel);
  p.floor = o.rel_floor > 0 ? o.rel_floor : 1e-6 * MaxAbsFinite(r, n);
  // A positive floor keeps 0/0 out of the relative error.
  if (!(p.floor >= DBL_MIN)) p.floor = DBL_MIN;
  p.ulp_keys = drift_kernels::UlpKeyCount(kWide);
  p.sig_keys = p.cap * 32 + 2;
  out->ulp_unit = kWide ? "float64" : "float32";
  out->sig_bits_cap = p.cap;
  out->rel_floor = p.floor;
  const Kernel kernel(p, isa);
  const bool count_diff = !std::is_same_v<TA, TR>;

  const bool per_t = o.per_timestep && a_arr.ndim() == 3;
  const int64_t groups = per_t ? a_arr.shape()[1] : 1;
  std::vector<GroupResult> res(static_cast<size_t>(per_t ? groups : 0));
  GroupResult total;
  std::vector<int64_t> total_ulp(static_cast<size_t>(p.ulp_keys), 0),
      total_sig(static_cast<size_t>(p.sig_keys), 0);
  // Long (N, T, U) rows are walked in index order with a group per t when
  // those fit in kMaxGroupBytes (strided t-major rows cost a TLB miss
  // each); otherwise t-major with one group.
  const size_t group_bytes = sizeof(Group) + kKeyBuffer * sizeof(uint32_t) +
                             static_cast<size_t>(p.ulp_keys + p.sig_keys + 2) *
                                 kCopies * sizeof(int64_t);
  const bool index_order =
      per_t && a_arr.shape()[2] >= kMinDirectRow &&
      static_cast<size_t>(groups) * group_bytes <= kMaxGroupBytes;
  std::vector<Group> work(index_order ? static_cast<size_t>(groups) : 1);
  GroupArena arena(&work, p);
  if (!arena.ok()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot allocate the drift histograms of ", work.size(), " timesteps"));
  }
  std::unique_ptr<TA[]> stage_a;
  std::unique_ptr<TR[]> stage_r;
  if (per_t && !index_order) {
    stage_a = std::make_unique<TA[]>(kStage);
    stage_r = std::make_unique<TR[]>(kStage);
  }
  std::vector<int64_t> ulp1, sig1;

  ForEachRun(
      a, r, a_arr.shape(), per_t, index_order, n, stage_a.get(), stage_r.get(),
      [&](const TA* pa, const TR* pr, int64_t m, int64_t g) {
        Feed(pa, pr, m, kernel,
             &work[index_order ? static_cast<size_t>(g) : 0]);
      },
      [&](int64_t g) {
        Acc acc;
        EndGroup(kernel, count_diff,
                 &work[index_order ? static_cast<size_t>(g) : 0], &acc, &ulp1,
                 &sig1);
        if (per_t) {
          GroupResult& gr = res[static_cast<size_t>(g)];
          gr.acc = acc;
          PlanGroup(ulp1, sig1, p, &gr);
          total.acc.Merge(acc);
          for (size_t k = 0; k < ulp1.size(); ++k) total_ulp[k] += ulp1[k];
          for (size_t k = 0; k < sig1.size(); ++k) total_sig[k] += sig1[k];
        } else {
          total.acc = acc;
          total_ulp.swap(ulp1);
          total_sig.swap(sig1);
        }
      });
  work = {};
  arena.Release();
  PlanGroup(total_ulp, total_sig, p, &total);

  bool medians_ok = true;
  bool need_ulp = total.ulp.need_values, need_sig = total.sig.need_values;
  for (const GroupResult& g : res) {
    need_ulp |= g.ulp.need_values;
    need_sig |= g.sig.need_values;
  }
  if (need_ulp || need_sig) {
    // One Gather per group (the whole array's ranges and the group's own),
    // with its filter, made once: runs of the groups interleave.
    std::vector<Gather> gathers(per_t ? res.size() : 1);
    std::vector<GatherFilter> filters;
    for (size_t g = 0; g < gathers.size(); ++g) {
      Gather& x = gathers[g];
      if (total.ulp.need_values) x.ulp_all = total.ulp.keys;
      if (total.sig.need_values) x.sig_all = total.sig.keys;
      x.ulp_all_v = &total.ulp_values;
      x.sig_all_v = &total.sig_values;
      if (per_t) {
        GroupResult& gr = res[g];
        if (gr.ulp.need_values) x.ulp_grp = gr.ulp.keys;
        if (gr.sig.need_values) x.sig_grp = gr.sig.keys;
        x.ulp_grp_v = &gr.ulp_values;
        x.sig_grp_v = &gr.sig_values;
      }
      filters.emplace_back(x, p);
    }
    ForEachRun(
        a, r, a_arr.shape(), per_t, index_order, n, stage_a.get(),
        stage_r.get(),
        [&](const TA* pa, const TR* pr, int64_t m, int64_t g) {
          const size_t w = per_t ? static_cast<size_t>(g) : 0;
          kernel.Gather(pa, pr, m, gathers[w], filters[w]);
        },
        [&](int64_t g) {
          if (per_t) medians_ok &= FinishMedians(&res[static_cast<size_t>(g)]);
        });
  } else {
    for (GroupResult& g : res) medians_ok &= FinishMedians(&g);
  }
  medians_ok &= FinishMedians(&total);
  if (!medians_ok) {
    return absl::InternalError(
        "drift medians: the second pass disagrees with the histograms");
  }

  out->overall = GroupStats(total, o, p.cap);
  for (const GroupResult& g : res) {
    out->per_timestep.push_back(GroupStats(g, o, p.cap));
  }
  out->pass = out->overall.pass;
  return absl::OkStatus();
}

absl::StatusOr<ArrayDrift> CompareImpl(const NdArray& a, const NdArray& ref,
                                       const DriftOptions& options,
                                       KernelIsa isa) {
  if (a.shape() != ref.shape()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot compare arrays of different shapes: ", a.ShapeString(),
        " vs reference ", ref.ShapeString()));
  }
  ArrayDrift out;
  out.dtype_a = DTypeName(a.dtype());
  out.dtype_ref = DTypeName(ref.dtype());
  out.shape = a.shape();
  out.bitwise_identical =
      a.dtype() == ref.dtype() && a.nbytes() == ref.nbytes() &&
      (a.nbytes() == 0 || std::memcmp(a.raw(), ref.raw(), a.nbytes()) == 0);
  const bool fa = a.dtype() == DType::kFloat32;
  const bool fr = ref.dtype() == DType::kFloat32;
  absl::Status status;
  if (fa && fr) {
    status = Compare<float, float>(a, ref, options, isa, &out);
  } else if (fa) {
    status = Compare<float, double>(a, ref, options, isa, &out);
  } else if (fr) {
    status = Compare<double, float>(a, ref, options, isa, &out);
  } else {
    status = Compare<double, double>(a, ref, options, isa, &out);
  }
  if (!status.ok()) return status;
  return out;
}

}  // namespace
}  // namespace drift_internal

absl::StatusOr<ArrayDrift> CompareArrays(const NdArray& a, const NdArray& ref,
                                         const DriftOptions& options) {
  return drift_internal::CompareImpl(a, ref, options,
                                     drift_internal::BestIsa());
}

namespace drift_internal {

const char* KernelName() { return IsaName(BestIsa()); }

std::vector<std::string> KernelNames() {
  std::vector<std::string> names;
  for (KernelIsa isa : kAllIsas) {
    if (Available(isa)) names.push_back(IsaName(isa));
  }
  return names;
}

absl::StatusOr<ArrayDrift> CompareArraysWithKernel(const NdArray& a,
                                                   const NdArray& ref,
                                                   const DriftOptions& options,
                                                   absl::string_view kernel) {
  for (KernelIsa isa : kAllIsas) {
    if (kernel == IsaName(isa) && Available(isa)) {
      return CompareImpl(a, ref, options, isa);
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("drift kernel \"", kernel,
                   "\" is not available in this build on this CPU"));
}

absl::StatusOr<ArrayDrift> CompareArraysPortable(const NdArray& a,
                                                 const NdArray& ref,
                                                 const DriftOptions& options) {
  return CompareImpl(a, ref, options, KernelIsa::kPortable);
}

}  // namespace drift_internal
}  // namespace driftscope