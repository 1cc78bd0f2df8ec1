// Flags that reach a daemon: --worker / --workers or --coordinator (or
// $DRIFTSCOPE_COORDINATOR), --insecure, --tls-ca, --tls-server-name, --token
// or --token-file (or $DRIFTSCOPE_TOKEN). One thread at a time.
#ifndef DRIFTSCOPE_CLIENT_CLI_REMOTE_FLAGS_H_
#define DRIFTSCOPE_CLIENT_CLI_REMOTE_FLAGS_H_

#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "client/cli/cli_util.h"
#include "client/lib/coordinator_client.h"
#include "client/lib/grpc_channel.h"
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

// The connection to the coordinator: --coordinator HOST:PORT, else
// $DRIFTSCOPE_COORDINATOR; InvalidArgument naming the flag when neither is
// given or the address is not HOST:PORT.
absl::StatusOr<CoordinatorClientOptions> CoordinatorOptionsFromFlags(
    const ParsedArgs& args);

// The remote flags plus --coordinator, for the job commands.
std::set<std::string> CoordinatorValueFlags();

// A client from the flags (CoordinatorOptionsFromFlags).
absl::StatusOr<std::unique_ptr<CoordinatorClient>> CoordinatorFromFlags(
    const ParsedArgs& args);

// ReportError for a failed coordinator call, where the exit code says
// whose fault it is: 2 (fix the command line) also for an unreachable
// coordinator or a rejected token, which are wrong --coordinator or
// --token values far more often than outages; 1 for the rest.
int ReportRemoteError(std::FILE* err, const absl::Status& status);

}  // namespace driftscope::cli

#endif  // DRIFTSCOPE_CLIENT_CLI_REMOTE_FLAGS_H_
