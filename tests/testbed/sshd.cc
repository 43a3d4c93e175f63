// Sshd; see sshd.h.
#include "sshd.h"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <stdexcept>

#include "common/proc_stat.h"
#include "common/read_file.h"
#include "tcp_probe.h"

namespace rnotify::testbed {
namespace {

constexpr const char* kSshd = "/usr/sbin/sshd";
constexpr const char* kSftpServer = "/usr/lib/openssh/sftp-server";

void makeKey(const std::string& path) {
  runChecked({"ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "rnotify-test", "-f", path},
             Deadline::in(std::chrono::seconds(20)));
}

}  // namespace

std::string Sshd::missing() {
  for (const char* bin : {kSshd, kSftpServer, "/usr/bin/ssh", "/usr/bin/ssh-keygen"}) {
    if (::access(bin, X_OK) != 0) return std::string(bin) + " is missing (install openssh-server and openssh-client)";
  }
  return "";
}

Sshd::Sshd(SshdOptions options) : options_(std::move(options)) {
  if (options_.listenAddresses.empty()) throw std::invalid_argument("Sshd: no listen address");
  port_ = options_.port != 0 ? options_.port : freePort();
  std::string hostKey = dir_ / "host_key";
  clientKey_ = dir_ / "client_key";
  makeKey(hostKey);
  makeKey(clientKey_);
  std::filesystem::copy_file(clientKey_ + ".pub", dir_ / "authorized_keys");

  std::string config = dir_ / "sshd_config";
  std::string text;
  for (const auto& a : options_.listenAddresses) text += "ListenAddress " + a + "\n";
  text += "Port " + std::to_string(port_) + "\n";
  text += "HostKey " + hostKey + "\n";
  text += "AuthorizedKeysFile " + (dir_ / "authorized_keys") + "\n";
  text +=
      "PermitRootLogin prohibit-password\n"
      "PasswordAuthentication no\n"
      "KbdInteractiveAuthentication no\n"
      "UsePAM no\n"
      "StrictModes no\n"
      "PidFile none\n"
      "LogLevel ERROR\n"
      // bash sources ~/.bashrc for ssh commands only at shell level < 2. A
      // throw-away server must not depend on the machine user's rc files (here
      // root's runs `pyenv init`, whose rehash lock can stall a login for 60 s).
      "SetEnv SHLVL=1 RNOTIFY_RUNTIME_DIR=" +
      runtimeDir() + "\n";
  text += std::string("Subsystem sftp ") + kSftpServer + "\n";
  writeFile(config, text);
  clientConfig_ = writeClientConfig("ssh_config", {});

  // Privilege separation directory; sshd refuses to start without it.
  std::filesystem::create_directories("/run/sshd");
  ProcessOptions p;
  p.argv = {kSshd, "-D", "-e", "-f", config};
  p.netns = options_.netns;
  process_ = std::make_unique<Process>(std::move(p));

  auto deadline = Deadline::in(std::chrono::seconds(10));
  for (const auto& a : options_.listenAddresses) {
    bool up = waitUntil(deadline, [&] { return !process_->running() || tcpAccepts(a, port_, options_.netns); });
    if (!up || !process_->running()) {
      throw std::runtime_error("sshd did not accept connections on " + a + ":" + std::to_string(port_) +
                               " within the deadline:\n" + process_->transcript());
    }
  }
}

Sshd::~Sshd() {
  // The agents' daemon outlives connections by design; not this test bed.
  for (pid_t pid : agentDaemons()) ::kill(pid, SIGKILL);
}

std::vector<pid_t> Sshd::agentDaemons() const {
  std::vector<pid_t> out;
  const std::string marker = std::string("--agent-daemon") + '\0' + runtimeDir() + "/";
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    // readFile, not an ifstream: a process that exits while its cmdline is
    // read gives ESRCH, which libstdc++'s filebuf throws (and this runs in
    // the destructor: std::terminate, seen once in CI).
    auto cmdline = rnotify::readFile((entry.path() / "cmdline").string());
    if (!cmdline.ok() || cmdline->find(marker) == std::string::npos) continue;
    const auto pid = static_cast<pid_t>(std::stol(name));
    // An exited daemon not yet reaped is not one.
    if (auto stat = readProcStat(pid); stat && stat->state != 'Z') out.push_back(pid);
  }
  return out;
}

std::string Sshd::writeClientConfig(const std::string& name, const std::vector<std::string>& extraLines) const {
  std::string path = dir_ / name;
  std::string text = "Host *\n";
  text += "  Port " + std::to_string(port_) + "\n";
  text += "  IdentityFile " + clientKey_ + "\n";
  text +=
      "  IdentitiesOnly yes\n"
      "  StrictHostKeyChecking no\n"
      "  UserKnownHostsFile /dev/null\n"
      "  BatchMode yes\n"
      "  LogLevel ERROR\n";
  for (const auto& l : extraLines) text += "  " + l + "\n";
  writeFile(path, text);
  return path;
}

}  // namespace rnotify::testbed
