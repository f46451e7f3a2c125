#include "runtime/comm/secret.hpp"

#include "models/errors.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace floe::runtime {
namespace {

std::string hex(const unsigned char* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out += digits[p[i] >> 4];
    out += digits[p[i] & 15];
  }
  return out;
}

}  // namespace

std::string sha256_hex(const char* data, size_t n) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data, n, digest, &len, EVP_sha256(), nullptr);
  return hex(digest, len);
}

std::string read_secret(const std::string& file) {
  std::string secret;
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw InputError("--secret-file " + file + ": cannot read the file");
    std::ostringstream s;
    s << in.rdbuf();
    secret = s.str();
    while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
    if (secret.empty()) throw InputError("--secret-file " + file + ": the file is empty; expected the cluster secret");
    struct stat st {};
    if (::stat(file.c_str(), &st) == 0 && (st.st_mode & 077))
      spdlog::warn("--secret-file {}: readable by other users (mode {:o}); chmod 600 it", file, st.st_mode & 0777);
    return secret;
  }
  const char* env = std::getenv("FLOE_SECRET");
  if (!env) throw InputError("no cluster secret: pass --secret-file PATH or set FLOE_SECRET (never on the command line)");
  secret = env;
  if (secret.empty()) throw InputError("FLOE_SECRET is empty; expected the cluster secret");
  return secret;
}

std::string make_nonce() {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) throw std::runtime_error("no random bytes for a join nonce (RAND_bytes)");
  return hex(bytes, sizeof bytes);
}

std::string join_proof(const std::string& secret, const std::string& nonce, const std::string& name, int devices) {
  const std::string text = nonce + "|" + name + "|" + std::to_string(devices);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
            reinterpret_cast<const unsigned char*>(text.data()), text.size(), mac, &len))
    throw std::runtime_error("HMAC-SHA256 failed");
  return hex(mac, len);
}

bool same_proof(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace floe::runtime
