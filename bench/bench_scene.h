// BenchScene: the real parts the latency benchmark measures against, on this
// machine only: an export directory with one subdirectory per transport, an
// rnotifyd daemon on a unix socket, and a throw-away sshd on 127.0.0.1 with an
// sshfs mount of the export (both from the integration test bed,
// tests/testbed). Everything is torn down in reverse order when it goes out of
// scope: mount, sshd, daemon, files.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "process.h"
#include "sshd.h"
#include "sshfs_mount.h"
#include "temp_dir.h"
#include "transport/connection.h"

namespace rnotify::bench {

class BenchScene {
 public:
  // The export lives in a fresh directory below baseDir ("" = $TMPDIR or /tmp).
  BenchScene(std::string rnotifydPath, const std::string& baseDir);
  ~BenchScene();
  BenchScene(const BenchScene&) = delete;
  BenchScene& operator=(const BenchScene&) = delete;

  const std::string& exportDir() const { return exportDir_; }
  // Mount a fresh tmpfs on each lane directory (root only). rnotifyd's
  // fanotify backend marks whole filesystems: on one shared filesystem every
  // agent would wake for every lane's changes, and the lanes would no longer
  // be independent.
  void setSeparateFilesystems(bool separate) { separateFilesystems_ = separate; }
  // Creates exportDir/name (one per transport, so that one transport's files
  // never wake another's watcher), on its own tmpfs if asked, and returns its
  // path. Throws if the tmpfs cannot be mounted.
  std::string laneDir(const std::string& name);

  // Starts `rnotifyd --listen unix:<tmp>/s.sock --export <export>` and
  // connects to it with Connection::overSocket. Throws if that fails.
  std::unique_ptr<Connection> connectUnix();
  // Makes a throw-away CA, a server certificate for 127.0.0.1 and a client
  // certificate (openssl command), starts `rnotifyd --listen tls:127.0.0.1:P
  // --tls-cert ... --tls-client-ca ...` and connects over TLS 1.3 with the
  // client certificate. Throws if that fails.
  std::unique_ptr<Connection> connectTls();

  // "" if sshd + sshfs can run here, else why not.
  static std::string sshMissing();
  // Starts sshd on 127.0.0.1 and mounts the export with sshfs (default
  // options). Throws with the tools' output if that fails.
  void startSsh();
  bool sshStarted() const { return sshd_ != nullptr; }
  // The mount's view of exportDir/name.
  std::string mountPath(const std::string& name) const;
  // Starts `ssh -F <config> root@127.0.0.1 -- rnotifyd --stdio` as the client
  // library would, and connects with Connection::overAgent.
  std::unique_ptr<Connection> connectAgent();
  // Extra ssh options ("-oCiphers=...") for sshArgv, to compare ssh settings.
  void setExtraSshOptions(std::vector<std::string> options) { extraSshOptions_ = std::move(options); }
  // ssh argv (the options the client library uses, plus the extra options)
  // that runs `command` on the server.
  std::vector<std::string> sshArgv(const std::vector<std::string>& command) const;
  // Extra arguments for every rnotifyd the scene starts (daemon and agents),
  // e.g. {"--watcher", "inotify"}; set before connecting.
  void setRnotifydArgs(std::vector<std::string> args) { rnotifydArgs_ = std::move(args); }
  // The RNOTIFY_AGENT value for the C API path (split on spaces there).
  std::string agentCommand() const;

 private:
  std::string rnotifyd_;
  std::vector<std::string> rnotifydArgs_;
  bool separateFilesystems_ = false;
  std::vector<std::string> laneMounts_;  // unmounted after everything that used them
  std::vector<std::string> extraSshOptions_;
  testbed::TempDir root_;
  std::string exportDir_;
  std::unique_ptr<testbed::Process> daemon_;
  std::unique_ptr<testbed::Process> tlsDaemon_;
  std::unique_ptr<testbed::Sshd> sshd_;
  std::unique_ptr<testbed::SshfsMount> mount_;
};

}  // namespace rnotify::bench
