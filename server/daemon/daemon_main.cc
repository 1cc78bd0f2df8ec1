#include "server/daemon/daemon_main.h"

#include <cstdint>

#include "absl/flags/flag.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/string_view.h"

ABSL_FLAG(std::string, listen, "",
          "HOST:PORT to listen on (required; port 0 picks a free port, "
          "printed as \"listening on HOST:PORT\" on the first stdout line)");
ABSL_FLAG(int, max_units, 4096, "largest layer width accepted");
ABSL_FLAG(int, max_timesteps, 100000, "longest sequence accepted");
ABSL_FLAG(int64_t, max_samples, 10000000,
          "most training (and, separately, eval) samples accepted");
ABSL_FLAG(int, max_epochs, 100000, "most epochs accepted");
ABSL_FLAG(double, max_flops, 1e15,
          "largest estimated FLOP count of a job (0: no limit)");
ABSL_FLAG(std::string, tls_cert, "", "PEM certificate chain: serve TLS");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA bundle: require client certificates it signed (mTLS)");
ABSL_FLAG(bool, insecure, false,
          "serve plaintext; required when no --tls_cert is given");
ABSL_FLAG(std::string, auth_token, "",
          "require \"authorization: Bearer TOKEN\" on every call except "
          "health and reflection (visible in ps: prefer --auth_token_file)");
ABSL_FLAG(std::string, auth_token_file, "",
          "as --auth_token, the token read from this file (e.g. a mounted "
          "secret; trailing whitespace stripped)");
ABSL_FLAG(absl::Duration, grace_period, absl::Seconds(30),
          "on SIGTERM, how long runs in progress may finish before they are "
          "cancelled");

namespace driftscope {

namespace {
// The daemons' flags are defined under server/ (their main.cc and this file).
bool DaemonFlagFile(absl::string_view file) {
  return absl::StrContains(file, "server/");
}
}  // namespace

void InitDaemonUsage(const char* usage) {
  absl::FlagsUsageConfig config;
  config.contains_help_flags = &DaemonFlagFile;
  config.contains_helpshort_flags = &DaemonFlagFile;
  // "/home/me/src/driftscope/server/worker/main.cc" -> "server/worker/main.cc"
  config.normalize_filename = [](absl::string_view file) {
    const size_t at = file.rfind("server/");
    return std::string(at == absl::string_view::npos ? file : file.substr(at));
  };
  absl::SetFlagsUsageConfig(config);
  absl::SetProgramUsageMessage(usage);
}

DaemonFlags ReadDaemonFlags() {
  DaemonFlags f;
  f.listen = absl::GetFlag(FLAGS_listen);
  f.tls.cert_file = absl::GetFlag(FLAGS_tls_cert);
  f.tls.key_file = absl::GetFlag(FLAGS_tls_key);
  f.tls.client_ca_file = absl::GetFlag(FLAGS_tls_client_ca);
  f.tls.insecure = absl::GetFlag(FLAGS_insecure);
  f.auth_token = absl::GetFlag(FLAGS_auth_token);
  f.auth_token_file = absl::GetFlag(FLAGS_auth_token_file);
  f.limits.max_units = absl::GetFlag(FLAGS_max_units);
  f.limits.max_timesteps = absl::GetFlag(FLAGS_max_timesteps);
  f.limits.max_samples = absl::GetFlag(FLAGS_max_samples);
  f.limits.max_epochs = absl::GetFlag(FLAGS_max_epochs);
  f.limits.max_flops = absl::GetFlag(FLAGS_max_flops);
  f.grace_period = absl::GetFlag(FLAGS_grace_period);
  return f;
}

}  // namespace driftscope
