// Flags that reach a worker daemon: --worker / --workers, --insecure,
// --tls-ca, --tls-server-name, --token or --token-file (or
// $DRIFTSCOPE_TOKEN). One thread at a time.
#ifndef DRIFTSCOPE_CLIENT_CLI_REMOTE_FLAGS_H_
#define DRIFTSCOPE_CLIENT_CLI_REMOTE_FLAGS_H_

#include <map>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "client/cli/cli_util.h"
#include "client/lib/worker_client.h"

namespace driftscope::cli {

// Value and switch flags to add to a command's ParseArgs sets.
const std::set<std::string>& RemoteValueFlags();
const std::set<std::string>& RemoteSwitchFlags();

// Connection options for `address` from the parsed flags; InvalidArgument
// naming the flag (an unreadable --tls-ca file, an unreadable or empty
// --token-file, --token together with --token-file). Without --tls-ca or
// --insecure the system roots verify the worker.
absl::StatusOr<WorkerClientOptions> WorkerOptionsFromFlags(
    const ParsedArgs& args, const std::string& address);

// The worker's environment as the key/value map of a RunRecord.
std::map<std::string, std::string> EnvironmentMap(const Environment& env);

}  // namespace driftscope::cli

#endif  // DRIFTSCOPE_CLIENT_CLI_REMOTE_FLAGS_H_
