// SHA-256 digests in lowercase hex, over OpenSSL's EVP interface.
//
// Used for spec digests and weight fingerprints. Sha256Hex is a pure
// function; a Sha256 object is one thread at a time and owns its OpenSSL
// context.
#ifndef DRIFTSCOPE_ENGINE_CORE_SHA256_H_
#define DRIFTSCOPE_ENGINE_CORE_SHA256_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>

namespace driftscope {

// SHA-256 of `size` bytes at `data`, as 64 lowercase hex digits.
std::string Sha256Hex(const void* data, size_t size);

using Sha256Digest = std::array<uint8_t, 32>;
std::string DigestHex(const Sha256Digest& digest);

// Incremental form: Update() any number of times, then HexDigest() once;
// after HexDigest() the object starts over as if newly constructed.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t size);
  std::string HexDigest();
  // The same as raw bytes, for hot loops. OpenSSL 3's EVP still allocates
  // one small provider context per digest; nothing else is allocated.
  Sha256Digest Digest();

 private:
  // Kept opaque so OpenSSL stays out of headers.
  void* md_;   // EVP_MD*, fetched once: an implicit fetch per digest mallocs
  void* ctx_;  // EVP_MD_CTX*
};

}  // namespace driftscope

#endif  // DRIFTSCOPE_ENGINE_CORE_SHA256_H_
