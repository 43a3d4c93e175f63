// SftpTree: polling for sshfs mounts, through a separate SFTP session of our
// own (`ssh <the mount's options> -s host sftp`, the same program, options and
// identity sshfs's ssh uses). Scanning the mount itself would see a change
// made on the server only when sshfs's caches expire (dcache_timeout, 20 s by
// default); the session asks the server directly, so a change shows within
// one interval.
//
// Each scan lists the watched directory (and every directory below it for a
// recursive watch) with OPENDIR/READDIR, up to 64 requests in flight, and
// compares the listing with the previous one (TreeView::diff: the same
// ordering as every other re-read). What SFTP version 3 does not carry
// limits what can be told: no inode numbers, so a rename is DELETE + CREATE;
// whole-second mtimes, so a same-size rewrite within one second is not seen.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "mounts/sshfs_target.h"
#include "poll/polled_tree.h"
#include "poll/sftp_codec.h"
#include "proto/messages.h"
#include "transport/agent_process.h"

namespace rnotify {

class SftpSession {
 public:
  using Clock = std::chrono::steady_clock;
  // Starts ssh with the SFTP subsystem and exchanges INIT/VERSION.
  static Result<std::unique_ptr<SftpSession>> open(const SshTarget& target, int timeoutMs);
  // The argv that starts it: {ssh, options..., -oBatchMode=yes, ..., -s, --, destination, sftp}.
  static std::vector<std::string> argv(const SshTarget& target);

  // Every entry of `root` (a directory; a path on the server, relative to the
  // login directory unless absolute), and with `recursive` of every directory
  // below it, relative to root. ENOENT when root itself is gone.
  Result<std::vector<proto::TreeEntry>> listTree(const std::string& root, bool recursive, int timeoutMs);
  // lstat of one path; ENOENT when it is gone.
  Result<sftp::Attrs> lstat(const std::string& path, int timeoutMs);

  bool alive() const { return alive_; }
  size_t requests() const { return requests_; }

 private:
  SftpSession() = default;
  Status send(const std::string& packet);
  Result<sftp::Reply> receive(Clock::time_point deadline);
  Error fail(Error error);

  AgentProcess process_;
  std::string destination_;
  std::string buffer_;
  uint32_t nextId_ = 1;
  bool alive_ = true;
  size_t requests_ = 0;
};

Result<std::unique_ptr<PolledTree>> scanOverSftp(const SshTarget& target, const std::string& serverPath,
                                                 bool isDirectory, const PollScanner::Options& options);

}  // namespace rnotify
