// SftpSession: a separate SFTP session of our own (`ssh <the mount's
// options> -s host sftp`, the same program, options and identity sshfs's ssh
// uses), driven without ever waiting: requests are queued and written as the
// pipe takes them, answers are read as they come. The owner watches fd() in
// its event loop (the pipes are in the owner's epoll set) and calls
// exchange() when one is ready; nothing here blocks, so a server that answers slowly, or not at all, holds up no one
// (the owner's deadlines end it).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "mounts/sshfs_target.h"
#include "poll/sftp_codec.h"
#include "transport/agent_process.h"

namespace rnotify {

class SftpSession {
 public:
  // Starts ssh with the SFTP subsystem and queues INIT; ready() once the
  // server's VERSION has come. Only starting the process can fail here. Its
  // pipes join `epollFd` (readable: an answer; writable: when requests wait).
  static Result<std::unique_ptr<SftpSession>> start(const SshTarget& target, int epollFd);
  // The argv that starts it: {ssh, options..., -oBatchMode=yes, ..., -s, --, destination, sftp}.
  static std::vector<std::string> argv(const SshTarget& target);
  ~SftpSession();  // leaves the epoll set and ends ssh at once: nothing waits for it
  SftpSession(const SftpSession&) = delete;
  SftpSession& operator=(const SftpSession&) = delete;

  bool ready() const { return ready_; }
  // Queues a request with one string argument (a path or a handle) and
  // returns its id; written by the next exchange().
  uint32_t request(sftp::Type type, std::string_view argument);
  // Writes what the pipe takes of the queued requests and reads what has
  // arrived (one read of at most 64 KiB: the descriptor stays readable for
  // more), without blocking; the whole answers read, in order (VERSION is
  // taken here). An error ends the session for good and says why, with what ssh
  // printed.
  Result<std::vector<sftp::Reply>> exchange();
  // Writes what the pipe takes of the queued requests; the rest when it is
  // writable (the owner's epoll set is told).
  Status flush();
  // Ends the session with this error (a deadline passed, an answer made no
  // sense), adding what ssh said.
  Error fail(Error error);
  const std::string& destination() const { return destination_; }
  size_t requests() const { return requests_; }

 private:
  SftpSession() = default;
  Status watchWrites(bool on);

  AgentProcess process_;
  int epoll_ = -1;  // the owner's
  std::string destination_;
  std::string in_, out_;  // bytes read but not yet a whole packet; bytes queued
  uint32_t nextId_ = 1;
  bool ready_ = false;
  bool writesWatched_ = false;
  size_t requests_ = 0;
};

}  // namespace rnotify
