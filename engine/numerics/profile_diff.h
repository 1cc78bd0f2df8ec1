// The knobs in which two profiles differ, each as a change that can be
// applied on its own: the basis of sweep attribution ("which knob causes the
// drift between A and B?"). Pure functions.
#ifndef DRIFTSCOPE_ENGINE_NUMERICS_PROFILE_DIFF_H_
#define DRIFTSCOPE_ENGINE_NUMERICS_PROFILE_DIFF_H_

#include <string>
#include <vector>

#include "engine/numerics/profile.h"

namespace driftscope {

struct KnobChange {
  std::string knob;   // "precision", "matmul", "isa", ...
  std::string value;  // B's value as a knob string piece, e.g. "matmul=tf32"
};

// The knobs of `b` that differ from `a`, in a fixed order (precision,
// matmul, isa, gemm, act, impl, threads, reduce, nondet, perturb, sr,
// loss_scale).
std::vector<KnobChange> ProfileDifferences(const Profile& a, const Profile& b);

// `a` with the knobs of `changes` taken from `b`.
Profile ApplyKnobs(const Profile& a, const Profile& b,
                   const std::vector<KnobChange>& changes);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_NUMERICS_PROFILE_DIFF_H_
