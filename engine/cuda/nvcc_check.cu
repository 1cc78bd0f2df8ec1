// Compiled in every CUDA build so that nvcc, the toolkit and the backend's
// flags (--fmad=false, sm_80/sm_90, warnings as errors) stay exercised; the
// CUDA kernels join this translation unit's target. Linked into nothing:
// the binaries must not depend on the CUDA runtime (device_info.h).
#include <cuda_runtime_api.h>

namespace driftscope {

// The toolkit version this build's headers describe.
int NvccCheckRuntimeHeaderVersion() { return CUDART_VERSION; }

}  // namespace driftscope
