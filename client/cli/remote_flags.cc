#include "client/cli/remote_flags.h"

#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/common/token_file.h"

namespace driftscope::cli {

const std::set<std::string>& RemoteValueFlags() {
  static const std::set<std::string> flags = {"tls-ca", "tls-server-name",
                                              "token", "token-file"};
  return flags;
}

const std::set<std::string>& RemoteSwitchFlags() {
  static const std::set<std::string> flags = {"insecure"};
  return flags;
}

absl::StatusOr<WorkerClientOptions> WorkerOptionsFromFlags(
    const ParsedArgs& args, const std::string& address) {
  WorkerClientOptions o;
  o.address = address;
  if (address.empty() || address.find(':') == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("--worker must be HOST:PORT, got '", address, "'"));
  }
  o.insecure = args.Has("insecure");
  if (auto ca = args.Get("tls-ca")) {
    if (o.insecure) {
      return absl::InvalidArgumentError(
          "--tls-ca and --insecure contradict each other; choose one");
    }
    std::ifstream in(*ca);
    if (!in) {
      return absl::InvalidArgumentError(
          absl::StrCat("--tls-ca ", *ca, ": cannot read the file"));
    }
    std::ostringstream pem;
    pem << in.rdbuf();
    o.tls_root_cert_pem = pem.str();
  }
  if (auto name = args.Get("tls-server-name")) o.tls_server_name = *name;
  const std::optional<std::string> token = args.Get("token");
  const std::optional<std::string> token_file = args.Get("token-file");
  if (token.has_value() && token_file.has_value()) {
    return absl::InvalidArgumentError(
        "--token and --token-file: give one of them (the file keeps the "
        "token out of ps)");
  }
  if (token.has_value()) {
    o.token = *token;
  } else if (token_file.has_value()) {
    absl::StatusOr<std::string> t = ReadTokenFile(*token_file, "--token-file");
    if (!t.ok()) return t.status();
    o.token = *std::move(t);
  } else if (const char* env = std::getenv("DRIFTSCOPE_TOKEN")) {
    o.token = env;
  }
  return o;
}

std::map<std::string, std::string> EnvironmentMap(const Environment& env) {
  return {{"hostname", env.hostname},
          {"os", env.os},
          {"cpu_model", env.cpu_model},
          {"isa_flags", absl::StrJoin(env.isa_flags, " ")},
          {"compiler", env.compiler},
          {"compile_flags", env.compile_flags},
          {"blas", env.blas},
          {"engine_version", env.engine_version}};
}

}  // namespace driftscope::cli
