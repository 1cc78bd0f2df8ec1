#include "proto/lib/environment_convert.h"

namespace driftscope {

v1::Environment EnvironmentToProto(const Environment& env) {
  v1::Environment p;
  p.set_hostname(env.hostname);
  p.set_os(env.os);
  p.set_kernel(env.kernel);
  p.set_arch(env.arch);
  p.set_cpu_model(env.cpu_model);
  for (const std::string& f : env.isa_flags) p.add_isa_flags(f);
  p.set_cores(env.cores);
  p.set_compiler(env.compiler);
  p.set_compile_flags(env.compile_flags);
  p.set_eigen_version(env.eigen_version);
  p.set_blas(env.blas);
  p.set_engine_version(env.engine_version);
  v1::CudaInfo* cuda = p.mutable_cuda();
  cuda->set_compiled(env.cuda.compiled);
  cuda->set_runtime_version(env.cuda.runtime_version);
  cuda->set_driver_version(env.cuda.driver_version);
  cuda->set_error(env.cuda.error);
  for (const CudaDeviceInfo& d : env.cuda.devices) {
    v1::CudaDevice* dp = cuda->add_devices();
    dp->set_name(d.name);
    dp->set_compute_major(d.compute_major);
    dp->set_compute_minor(d.compute_minor);
    dp->set_sm_count(d.sm_count);
    dp->set_memory_bytes(d.memory_bytes);
  }
  return p;
}

Environment EnvironmentFromProto(const v1::Environment& p) {
  Environment env;
  env.hostname = p.hostname();
  env.os = p.os();
  env.kernel = p.kernel();
  env.arch = p.arch();
  env.cpu_model = p.cpu_model();
  env.isa_flags.assign(p.isa_flags().begin(), p.isa_flags().end());
  env.cores = p.cores();
  env.compiler = p.compiler();
  env.compile_flags = p.compile_flags();
  env.eigen_version = p.eigen_version();
  env.blas = p.blas();
  env.engine_version = p.engine_version();
  env.cuda.compiled = p.cuda().compiled();
  env.cuda.runtime_version = p.cuda().runtime_version();
  env.cuda.driver_version = p.cuda().driver_version();
  env.cuda.error = p.cuda().error();
  for (const v1::CudaDevice& d : p.cuda().devices()) {
    env.cuda.devices.push_back(CudaDeviceInfo{d.name(), d.compute_major(),
                                              d.compute_minor(), d.sm_count(),
                                              d.memory_bytes()});
  }
  return env;
}

void SetDeviceRun(const DeviceRunInfo& d, v1::RunSummary* summary) {
  if (d.backend.empty()) {
    summary->clear_device();
    return;
  }
  v1::DeviceRun* p = summary->mutable_device();
  p->set_backend(d.backend);
  p->set_gpu_name(d.gpu_name);
  p->set_compute_major(d.compute_major);
  p->set_compute_minor(d.compute_minor);
  p->set_driver_version(d.driver_version);
  p->set_runtime_version(d.runtime_version);
  p->set_cublas_version(d.cublas_version);
  p->set_cudnn_version(d.cudnn_version);
  p->set_math_mode(d.math_mode);
}

DeviceRunInfo DeviceRunFromProto(const v1::DeviceRun& p) {
  DeviceRunInfo d;
  d.backend = p.backend();
  d.gpu_name = p.gpu_name();
  d.compute_major = p.compute_major();
  d.compute_minor = p.compute_minor();
  d.driver_version = p.driver_version();
  d.runtime_version = p.runtime_version();
  d.cublas_version = p.cublas_version();
  d.cudnn_version = static_cast<long>(p.cudnn_version());
  d.math_mode = p.math_mode();
  return d;
}

}  // namespace driftscope
