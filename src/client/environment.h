// Environment: everything the client core takes from the machine it runs on.
// The configuration (files and RNOTIFY_* variables), the mount table
// (/proc/self/mountinfo), an sshfs mount's ssh process (/proc), how a
// connection to an rnotifyd starts (ssh, sockets), the credentials for SMB,
// and how each fallback source starts (SMB2 change notify, scans). The core
// decides; the environment only does.
//
// systemEnvironment() is the machine's. Tests give the core their own
// (tests/unit/client/client_core_test.cc): a mount table with an "sshfs
// mount" that is a local directory, connections to an rnotifyd the test
// runs on a unix socket, sources the test feeds, so that source selection,
// fallback, upgrade and reconnection are tested without ssh or Samba.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "client/watch_source.h"
#include "common/result.h"
#include "mounts/config.h"
#include "mounts/mount_resolver.h"
#include "mounts/sshfs_target.h"
#include "mounts/tls_settings.h"
#include "poll/poll_scanner.h"
#include "smb/smb_credentials.h"

namespace rnotify {

class Connection;

// What a fallback source is asked to watch.
struct SourceRequest {
  SourceKind kind = SourceKind::kMountScan;
  std::string localRoot;  // the real path through the mount ("" for an smb:// URL)
  uint32_t mask = 0;      // IN_ALL_EVENTS bits asked for
  bool recursive = false;
  bool isDirectory = true;
  PollScanner::Options scan;       // kSftpScan, kMountScan
  const SshTarget* ssh = nullptr;  // kSftpScan: the mount's ssh settings
  std::string serverPath;          // kSftpScan: the watched path on the server
  int startTimeoutMs = 20000;      // kSftpScan: for the session's start (ssh, SFTP's VERSION)
  SmbLocation smb;                 // kLibsmbclient: the share and path
  SmbCredentials credentials;      // kLibsmbclient
};

// The client core's timeouts.
struct ClientTiming {
  int connectTimeoutMs = 20000;  // a connection's establishment; each request (the listings 3x)
  int reconnectMaxMs = 30000;    // the longest pause between reconnection attempts
};

class Environment {
 public:
  virtual ~Environment() = default;

  virtual Result<Config> loadConfig() = 0;
  virtual ClientTiming timing() = 0;
  // Which mount a canonical path is on.
  virtual ResolvedPath resolve(const std::string& realPath) = 0;
  // The ssh settings of an sshfs mount, and how the server sees its
  // connection ("" when not known).
  virtual Result<SshTarget> sshTarget(const MountInfo& mount) = 0;
  virtual std::string originKey(const SshTarget& target) = 0;
  // A connection to an rnotifyd, started (Connection::startAgent and
  // startSocket): established later, in the core's epoll set.
  virtual Result<std::unique_ptr<Connection>> startAgent(const std::vector<std::string>& argv,
                                                         const std::string& destination,
                                                         const std::string& agentCommand) = 0;
  virtual Result<std::unique_ptr<Connection>> startSocket(const std::string& endpoint, const TlsSettings& tls) = 0;
  // The SMB credentials for `user` (the mount's username=): the config's
  // smb_credentials file, $RNOTIFY_SMB_CREDENTIALS, or none (a guest).
  virtual Result<SmbCredentials> smbCredentials(const Config& config, const std::string& user) = 0;
  // Starts a fallback source; the error says why it cannot serve.
  virtual Result<std::unique_ptr<WatchSource>> startSource(const SourceRequest& request) = 0;
};

std::unique_ptr<Environment> systemEnvironment();

}  // namespace rnotify
