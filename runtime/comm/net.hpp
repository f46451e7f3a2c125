#pragma once
// Addresses of nodes and coordinators.
#include <string>

namespace floe::runtime {

struct HostPort {
  std::string host;
  int port = 0;
};

// "HOST:PORT" (PORT 1..65535; 0 allowed when `any_port`). Throws floe::InputError naming
// `what` (the flag or variable) and the text.
HostPort parse_host_port(const std::string& text, const std::string& what, bool any_port = false);

// The local address this machine uses to reach `host` (no packet is sent): where the peers
// of a node reach it back.
std::string local_address_towards(const std::string& host, int port);

}  // namespace floe::runtime
