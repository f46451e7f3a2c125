#pragma once
// The cluster secret and the join proof. A node proves that it knows the secret without
// sending it: it answers the coordinator's one-time nonce with HMAC-SHA256(secret, nonce |
// name | devices). The secret never appears on a command line.
#include <string>

namespace floe::runtime {

// From `file` when given (trailing newlines dropped), else the FLOE_SECRET environment
// variable. Throws floe::InputError naming the source when there is none or it is empty.
std::string read_secret(const std::string& file);

// 32 random bytes from the system's CSPRNG, in hex.
std::string make_nonce();

std::string join_proof(const std::string& secret, const std::string& nonce, const std::string& name, int devices);

// Constant-time comparison (a timing side channel must not leak the proof byte by byte).
bool same_proof(const std::string& a, const std::string& b);

// SHA-256 of n bytes, in hex (checkpoint manifests).
std::string sha256_hex(const char* data, size_t n);

}  // namespace floe::runtime
