// BenchScene; see bench_scene.h.
#include "bench_scene.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

#include "deadline.h"

namespace rnotify::bench {

BenchScene::BenchScene(std::string rnotifydPath, const std::string& baseDir)
    : rnotifyd_(std::move(rnotifydPath)), root_("rnotify-bench-", baseDir) {
  if (::access(rnotifyd_.c_str(), X_OK) != 0) {
    throw std::runtime_error("rnotifyd is not executable at '" + rnotifyd_ +
                             "': build it (ninja rnotifyd) or pass --rnotifyd");
  }
  exportDir_ = root_.mkdir("export");
}

BenchScene::~BenchScene() {
  // Mount before sshd, sshd before the files: the members' reverse order.
  mount_.reset();
  sshd_.reset();
  daemon_.reset();
  // Lazily: nothing should hold them now, and the files must go either way.
  for (auto it = laneMounts_.rbegin(); it != laneMounts_.rend(); ++it) ::umount2(it->c_str(), MNT_DETACH);
}

std::string BenchScene::laneDir(const std::string& name) {
  std::string dir = root_.mkdir("export/" + name);
  if (separateFilesystems_) {
    if (::mount("rnotify-bench", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755") != 0) {
      throw std::runtime_error("cannot mount a tmpfs on " + dir + ": " + std::strerror(errno) +
                               " (run as root, or pass --shared-fs)");
    }
    laneMounts_.push_back(dir);
  }
  return dir;
}

std::unique_ptr<Connection> BenchScene::connectUnix() {
  std::string endpoint = "unix:" + (root_ / "s.sock");
  testbed::ProcessOptions options;
  options.argv = {rnotifyd_, "--listen", endpoint, "--export", exportDir_};
  options.argv.insert(options.argv.end(), rnotifydArgs_.begin(), rnotifydArgs_.end());
  daemon_ = std::make_unique<testbed::Process>(std::move(options));
  // No readiness signal from the daemon: retry the connect until it listens.
  auto deadline = testbed::Deadline::in(std::chrono::seconds(10));
  std::unique_ptr<Connection> connection;
  std::string lastError;
  testbed::waitUntil(deadline, [&] {
    if (!daemon_->running()) return true;
    auto c = Connection::overSocket(endpoint, 2000);
    if (c) {
      connection = std::move(*c);
      return true;
    }
    lastError = c.error().message;
    return false;
  });
  if (!connection) {
    throw std::runtime_error("cannot connect to rnotifyd at " + endpoint + ": " + lastError + "\n" +
                             daemon_->transcript());
  }
  return connection;
}

std::unique_ptr<Connection> BenchScene::connectTls() {
  const std::string dir = root_ / "tls";
  std::filesystem::create_directories(dir);
  // rnotifyd refuses root over the network: the client is nobody, which
  // must then be able to read the export.
  const std::string user = "nobody";
  ::chmod(std::string(root_ / "").c_str(), 0755);
  ::chmod(exportDir_.c_str(), 0755);
  const std::string key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
  const std::string script =
      "set -e; cd '" + dir + "'\n" + "openssl req -x509 " + key +
      " -keyout ca.key -out ca.pem -days 1 -subj '/CN=rnotify bench CA'\n" +
      "for who in server client; do\n"
      "  openssl req " +
      key + " -keyout $who.key -out $who.csr -subj \"/CN=$([ $who = client ] && echo " + user +
      " || echo rnotifyd)\"\n"
      "  printf 'subjectAltName=IP:127.0.0.1\\n' > $who.ext\n"
      "  openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $who.pem -days 1 "
      "-extfile $who.ext\n"
      "done\n"
      "chmod 600 *.key\n";
  testbed::runChecked({"sh", "-c", script}, testbed::Deadline::in(std::chrono::seconds(30)));
  const int port = 20000 + ::getpid() % 30000;
  const std::string endpoint = "tls:127.0.0.1:" + std::to_string(port);
  testbed::ProcessOptions options;
  options.argv = {rnotifyd_,      "--listen",          endpoint,    "--export",          exportDir_,
                  "--tls-cert",   dir + "/server.pem", "--tls-key", dir + "/server.key", "--tls-client-ca",
                  dir + "/ca.pem"};
  options.argv.insert(options.argv.end(), rnotifydArgs_.begin(), rnotifydArgs_.end());
  tlsDaemon_ = std::make_unique<testbed::Process>(std::move(options));
  TlsSettings tls;
  tls.ca = dir + "/ca.pem";
  tls.cert = dir + "/client.pem";
  tls.key = dir + "/client.key";
  auto deadline = testbed::Deadline::in(std::chrono::seconds(10));
  std::unique_ptr<Connection> connection;
  std::string lastError;
  testbed::waitUntil(deadline, [&] {
    if (!tlsDaemon_->running()) return true;
    auto c = Connection::overSocket(endpoint, tls, 2000);
    if (c) {
      connection = std::move(*c);
      return true;
    }
    lastError = c.error().message;
    return false;
  });
  if (!connection) {
    throw std::runtime_error("cannot connect to rnotifyd at " + endpoint + ": " + lastError + "\n" +
                             tlsDaemon_->transcript());
  }
  return connection;
}

std::string BenchScene::sshMissing() {
  if (::geteuid() != 0) return "needs root (sshd logs in as root with a throw-away key)";
  std::string why = testbed::Sshd::missing();
  return why.empty() ? testbed::SshfsMount::missing() : why;
}

void BenchScene::startSsh() {
  sshd_ = std::make_unique<testbed::Sshd>();
  testbed::SshfsOptions options;
  options.remote = "root@" + sshd_->address() + ":" + exportDir_;
  options.mountPoint = root_.mkdir("mnt");
  options.sshConfig = sshd_->clientConfig();
  options.port = sshd_->port();
  mount_ = std::make_unique<testbed::SshfsMount>(std::move(options));
}

std::string BenchScene::mountPath(const std::string& name) const { return *mount_ / name; }

std::vector<std::string> BenchScene::sshArgv(const std::vector<std::string>& command) const {
  // The flags the client library adds itself (sshfs_target.h, agentArgv).
  std::vector<std::string> argv{
      "ssh", "-F", sshd_->clientConfig(), "-T", "-oBatchMode=yes", "-oClearAllForwardings=yes", "-x", "-a"};
  argv.insert(argv.end(), extraSshOptions_.begin(), extraSshOptions_.end());
  argv.push_back("root@" + sshd_->address());
  argv.push_back("--");
  argv.insert(argv.end(), command.begin(), command.end());
  return argv;
}

std::string BenchScene::agentCommand() const {
  std::string command = rnotifyd_ + " --stdio";
  for (const std::string& arg : rnotifydArgs_) command += " " + arg;
  return command;
}

std::unique_ptr<Connection> BenchScene::connectAgent() {
  std::vector<std::string> command{rnotifyd_, "--stdio"};
  command.insert(command.end(), rnotifydArgs_.begin(), rnotifydArgs_.end());
  auto connection = Connection::overAgent(sshArgv(command), "root@" + sshd_->address(), agentCommand(), 20000);
  if (!connection) throw std::runtime_error("cannot start the agent over ssh: " + connection.error().message);
  return std::move(*connection);
}

}  // namespace rnotify::bench
