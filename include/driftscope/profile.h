// driftscope/profile.h — the numerics of one environment.
//
// Profile::Parse("fp32,isa=x86-64-v3,gemm=split-k=4,threads=2") or a preset
// name (Profile::PresetNames(): ref64, fp32, fp32-sse2, tf32, bf16, ...);
// Profile::ToString() is the canonical text a run reports. ResolveProfile
// gives the profile as it runs on this machine (isa=auto resolved) and
// Context::Check whether this build and CPU can run it at all.
//
// Pure functions and values; safe for concurrent use.
#ifndef DRIFTSCOPE_PUBLIC_PROFILE_H_
#define DRIFTSCOPE_PUBLIC_PROFILE_H_

#include "engine/numerics/context.h"
#include "engine/numerics/profile.h"

#endif  // DRIFTSCOPE_PUBLIC_PROFILE_H_
