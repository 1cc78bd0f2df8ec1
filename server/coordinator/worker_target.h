// WorkerTarget: whom the coordinator calls and with which credential
// (DESIGN §10: the coordinator's credential goes only to workers that
// proved who they are). Plain values; safe to copy between threads.
#ifndef DRIFTSCOPE_SERVER_COORDINATOR_WORKER_TARGET_H_
#define DRIFTSCOPE_SERVER_COORDINATOR_WORKER_TARGET_H_

#include <string>

namespace driftscope::coordinator {

// The bearer token sent with the coordinator's calls to one worker.
struct WorkerCredential {
  enum class Kind {
    kNone,   // no token: a registrant that proved nothing
    kFleet,  // the fleet-wide --worker_auth_token: static workers and
             // registrations authenticated by a client certificate (mTLS)
    kOwn,    // the token the worker gave at registration (worker_token)
  };
  Kind kind = Kind::kNone;
  std::string token;  // kOwn only

  // What a registration earns: its own worker_token when it gave one (it
  // opens only that worker), else the fleet token when `identity` (its
  // client certificate's) is not empty, else nothing. So a registrant
  // without a certificate never receives a token that opens other workers.
  static WorkerCredential ForRegistration(const std::string& identity,
                                          const std::string& worker_token) {
    if (!worker_token.empty()) return {Kind::kOwn, worker_token};
    if (!identity.empty()) return {Kind::kFleet, ""};
    return {};
  }
};

struct WorkerTarget {
  std::string address;  // "HOST:PORT"
  WorkerCredential credential;
};

}  // namespace driftscope::coordinator

#endif  // DRIFTSCOPE_SERVER_COORDINATOR_WORKER_TARGET_H_
