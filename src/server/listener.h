// Listener: accepts client connections on a unix socket or a TCP port and
// hands each to the Server. Plain TCP has no authentication or encryption, so
// it is refused on anything but a loopback address.
#pragma once

#include <asio.hpp>
#include <memory>
#include <string>
#include <variant>

#include "common/result.h"

namespace rnotify {

class Server;

struct ListenAddress {
  enum class Kind { kUnix, kTcp } kind;
  std::string path;  // unix
  std::string host;  // tcp
  uint16_t port = 0;
};

// "unix:/run/rnotifyd.sock", "tcp:127.0.0.1:4242", "tcp:[::1]:4242".
Result<ListenAddress> parseListenAddress(const std::string& text);

class Listener {
 public:
  static Result<std::unique_ptr<Listener>> start(asio::io_context& io, Server& server, const ListenAddress& address);
  virtual ~Listener() = default;
  virtual void stop() = 0;
  virtual std::string describe() const = 0;
};

}  // namespace rnotify
