// Throwaway TLS material and file reading for the daemon tests and
// worker_bench. Pure functions (they write only under the given directory).
#ifndef DRIFTSCOPE_TESTS_SERVER_TEST_CERTS_H_
#define DRIFTSCOPE_TESTS_SERVER_TEST_CERTS_H_

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

namespace driftscope::testing {

// Creates `dir` and writes a self-signed certificate for localhost and
// 127.0.0.1 to dir/cert.pem and its key to dir/key.pem (the openssl
// command, valid one day). One such certificate can serve as server
// certificate, client certificate and the CA that signed both. False when
// openssl failed.
inline bool MakeSelfSignedCert(const std::string& dir) {
  const std::string cmd =
      "mkdir -p " + dir +
      " && openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "
      "/CN=localhost"
      " -addext subjectAltName=IP:127.0.0.1,DNS:localhost -keyout " +
      dir + "/key.pem -out " + dir + "/cert.pem 2>/dev/null";
  return std::system(cmd.c_str()) == 0;
}

// The whole file, or "" when it cannot be read.
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace driftscope::testing

#endif  // DRIFTSCOPE_TESTS_SERVER_TEST_CERTS_H_
