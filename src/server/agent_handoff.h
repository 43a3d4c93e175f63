// Agent hand-off: why an ssh connection can break without losing events.
//
// ssh starts `rnotifyd --stdio` per connection, and the process dies with the
// connection. So that a client that reconnects can resume (proto::Attach: the
// server replays what it missed), the watches live in a per-user daemon that
// outlives connections: the agent started by ssh connects to it over a unix
// socket in a private directory, hands it its stdin and stdout (SCM_RIGHTS),
// and waits; the daemon serves the protocol on them directly (no copying).
// The first agent starts the daemon; it exits when it has served nobody for a
// while. Killing the agent ends its connection as if ssh had broken it.
//
// The daemon is keyed by the program and its options, so that agents with
// other options (or another build) get a daemon of their own.
#pragma once

#include <asio.hpp>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "server/accept_backoff.h"

namespace rnotify {

class Server;

// The private directory for this user's daemon sockets:
// $RNOTIFY_RUNTIME_DIR, else $XDG_RUNTIME_DIR/rnotify, else /tmp/rnotify-UID.
// Created 0700 if missing; refused if it is not a directory owned by this
// user and closed to others (someone else could take the socket's place).
Result<std::string> agentRuntimeDir();

// The daemon's socket path for these options (argv without --stdio).
std::string agentSocketPath(const std::string& dir, const std::vector<std::string>& options);

// The agent's side: connect to the daemon (starting it if needed, with
// `daemonArgv`), hand over stdin/stdout and wait until the daemon is done
// with them. Returns the exit code; an Error if the daemon cannot be reached
// (the caller then serves the client itself).
Result<int> handOffToDaemon(const std::string& socketPath, const std::vector<std::string>& daemonArgv);

// The daemon's side: accepts agents on socketPath and starts a session on the
// descriptors each hands over. Holds a lock next to the socket so that only
// one daemon serves it (a second one started by a race gets EEXIST).
class AgentAcceptor {
 public:
  static Result<std::unique_ptr<AgentAcceptor>> start(asio::io_context& io, Server& server,
                                                      const std::string& socketPath);
  ~AgentAcceptor();
  void stop();
  size_t accepted() const { return accepted_; }

 private:
  AgentAcceptor(asio::io_context& io, Server& server, std::string path);
  void accept();
  void receive(const std::shared_ptr<asio::local::stream_protocol::socket>& socket);

  asio::local::stream_protocol::acceptor acceptor_;
  Server& server_;
  std::string path_;
  UniqueFd lock_;
  AcceptBackoff backoff_;
  size_t accepted_ = 0;
};

}  // namespace rnotify
