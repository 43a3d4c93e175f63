// ConnectionSource: the client's real protocol code path (rnotify::Connection,
// src/client/connection.h) without the Client/C API layer on top: one Watch
// request, then Events frames decoded by the project's codec. Used for the
// unix-socket transport (a daemon started with --listen) and for the agent
// started directly over ssh (c' in the benchmark).
#pragma once

#include <memory>

#include "event_source.h"
#include "transport/connection.h"

namespace rnotify::bench {

class ConnectionSource final : public EventSource {
 public:
  // Sends Watch{IN_CREATE, serverPath} on `connection`; throws
  // std::runtime_error if the server refuses. changeDir is where the runner
  // creates files (the same directory, seen from the server's side).
  ConnectionSource(std::string name, std::unique_ptr<Connection> connection, const std::string& serverPath,
                   std::string changeDir);
  const std::string& name() const override { return name_; }
  const std::string& description() const override { return description_; }
  const std::string& changeDir() const override { return changeDir_; }
  std::optional<std::string> nextCreate(int timeoutMs) override;

 private:
  std::string name_;
  std::string description_;
  std::string changeDir_;
  std::unique_ptr<Connection> connection_;
  std::deque<std::string> queue_;
};

}  // namespace rnotify::bench
