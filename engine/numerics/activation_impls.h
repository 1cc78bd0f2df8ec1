// The activation implementation a profile asks for (DESIGN §6 "act" knob).
//
// ActivationFor picks, for one activation, the kernels of the profile's
// implementation: libm (std::exp, std::tanh in T), fast (Eigen's vectorized
// approximations from the Context's ISA-level kernels: TensorFlow's CPU
// functions), or gpu (an emulation of CUDA fast intrinsics). Only tanh and
// sigmoid differ between implementations; relu, linear and the hard
// sigmoids are exact operations and always the same. Derivatives are the
// output-based formulas of LibmActivation in every case. Pure.
#ifndef DRIFTSCOPE_ENGINE_NUMERICS_ACTIVATION_IMPLS_H_
#define DRIFTSCOPE_ENGINE_NUMERICS_ACTIVATION_IMPLS_H_

#include <cstdint>

#include "engine/numerics/activations.h"
#include "engine/numerics/context.h"

namespace driftscope {

template <typename T>
ActivationKernels<T> ActivationFor(const Context& ctx, Activation a);

// The GPU emulation's pieces, exposed for tests. Error model:
// GpuExp(x) = ex2.approx(x·log2 e): the product rounded to float, exp2 in
// double rounded to float with its last mantissa bit cleared (~2^-22
// relative, like PTX ex2.approx.ftz), denormal results flushed to zero;
// GpuSigmoid(x) = __fdividef(1, 1 + GpuExp(−x)) with a reciprocal of the
// same accuracy; GpuTanh(x) = tanh rounded to an 11-bit mantissa (the
// 2^-10.99 relative error bound of tanh.approx.f32 on sm_75+).
float GpuExp(float x);
float GpuSigmoid(float x);
float GpuTanh(float x);

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_NUMERICS_ACTIVATION_IMPLS_H_
