#include "engine/core/sha256.h"

#include <openssl/evp.h>

namespace driftscope {

namespace {

std::string ToHex(const unsigned char* digest, unsigned int n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex(2 * n, '0');
  for (unsigned int i = 0; i < n; ++i) {
    hex[2 * i] = kDigits[digest[i] >> 4];
    hex[2 * i + 1] = kDigits[digest[i] & 0xF];
  }
  return hex;
}

EVP_MD_CTX* Ctx(void* p) { return static_cast<EVP_MD_CTX*>(p); }
EVP_MD* Md(void* p) { return static_cast<EVP_MD*>(p); }

}  // namespace

std::string Sha256Hex(const void* data, size_t size) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  // EVP_Digest only fails on allocation failure; an empty string then makes
  // every comparison fail loudly rather than matching by accident.
  if (EVP_Digest(data, size, digest, &n, EVP_sha256(), nullptr) != 1) {
    return "";
  }
  return ToHex(digest, n);
}

Sha256::Sha256()
    : md_(EVP_MD_fetch(nullptr, "SHA256", nullptr)), ctx_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex(Ctx(ctx_), Md(md_), nullptr);
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(Ctx(ctx_));
  EVP_MD_free(Md(md_));
}

void Sha256::Update(const void* data, size_t size) {
  EVP_DigestUpdate(Ctx(ctx_), data, size);
}

std::string Sha256::HexDigest() { return DigestHex(Digest()); }

Sha256Digest Sha256::Digest() {
  Sha256Digest digest{};
  unsigned int n = 0;
  EVP_DigestFinal_ex(Ctx(ctx_), digest.data(), &n);
  EVP_DigestInit_ex(Ctx(ctx_), Md(md_), nullptr);
  return digest;
}

std::string DigestHex(const Sha256Digest& digest) {
  return ToHex(digest.data(), static_cast<unsigned int>(digest.size()));
}

}  // namespace driftscope
