#include "runtime/comm/net.hpp"

#include "models/errors.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>

namespace floe::runtime {

HostPort parse_host_port(const std::string& text, const std::string& what, bool any_port) {
  const auto colon = text.rfind(':');
  const std::string expected = "expected HOST:PORT, e.g. 10.0.0.1:4500";
  if (colon == std::string::npos || colon == 0 || colon + 1 == text.size())
    throw InputError(what + " \"" + text + "\": " + expected);
  HostPort hp{text.substr(0, colon), 0};
  const auto digits = text.substr(colon + 1);
  if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 5)
    throw InputError(what + " \"" + text + "\": the port is not a number; " + expected);
  hp.port = std::stoi(digits);
  if (hp.port > 65535 || (hp.port == 0 && !any_port))
    throw InputError(what + " \"" + text + "\": port " + digits + " outside 1..65535");
  return hp;
}

std::string local_address_towards(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || !res)
    throw std::runtime_error("cannot resolve " + host);
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  std::string out;
  if (fd >= 0 && connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
    sockaddr_in local{};
    socklen_t len = sizeof local;
    char buf[INET_ADDRSTRLEN] = {};
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) == 0 &&
        inet_ntop(AF_INET, &local.sin_addr, buf, sizeof buf))
      out = buf;
  }
  if (fd >= 0) close(fd);
  freeaddrinfo(res);
  if (out.empty()) throw std::runtime_error("no route to " + host + ": " + std::strerror(errno));
  return out;
}

}  // namespace floe::runtime
