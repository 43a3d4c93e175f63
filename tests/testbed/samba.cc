// Samba; see samba.h.
#include "samba.h"

#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <random>
#include <stdexcept>

#include "tcp_probe.h"

namespace rnotify::testbed {
namespace {

constexpr const char* kSmbd = "/usr/sbin/smbd";
constexpr const char* kSmbpasswd = "/usr/bin/smbpasswd";
constexpr const char* kSmbclient = "/usr/bin/smbclient";

std::string randomPassword() {
  static constexpr char kChars[] = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  std::random_device rd;
  std::string out = "Rn-";
  for (int i = 0; i < 16; ++i) out += kChars[rd() % (sizeof kChars - 1)];
  return out;
}

// The system account smbd maps the SMB user to. Kept once made: parallel
// tests share it, and it can do nothing but own the files it writes.
void ensureUser() {
  if (::getpwnam(Samba::kUser) != nullptr) return;
  auto r = runCommand({"useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", Samba::kUser},
                      Deadline::in(std::chrono::seconds(20)));
  // Another test may have made it in between (exit 9: already exists).
  if (::getpwnam(Samba::kUser) == nullptr) {
    throw std::runtime_error("cannot create the Samba test user:\n" +
                             r.describe({"useradd", "--system", Samba::kUser}));
  }
}

}  // namespace

std::string Samba::missing() {
  for (const char* bin : {kSmbd, kSmbpasswd, kSmbclient}) {
    if (::access(bin, X_OK) != 0) return std::string(bin) + " is missing (install samba and smbclient)";
  }
  if (::geteuid() != 0) return "smbd needs root";
  return "";
}

Samba::Samba() {
  ensureUser();
  port_ = freePort();
  password_ = randomPassword();
  exportDir_ = dir_.mkdir("export");
  // smbd serves the share as kUser: it must reach the export through the
  // temp dir (mkdtemp makes it 0700) and write into it.
  ::chmod(dir_.path().c_str(), 0755);
  ::chmod(exportDir_.c_str(), 0777);
  for (const char* d : {"private", "lock", "state", "cache", "run"}) dir_.mkdir(d);
  config_ = dir_ / "smb.conf";
  const std::string& d = dir_.path();
  writeFile(config_,
            "[global]\n"
            "  netbios name = RNOTIFYTEST\n"
            "  workgroup = WORKGROUP\n"
            "  server role = standalone server\n"
            "  security = user\n"
            "  map to guest = never\n"
            "  passdb backend = tdbsam:" +
                d +
                "/private/passdb.tdb\n"
                "  private dir = " +
                d +
                "/private\n"
                "  lock directory = " +
                d +
                "/lock\n"
                "  state directory = " +
                d +
                "/state\n"
                "  cache directory = " +
                d +
                "/cache\n"
                "  pid directory = " +
                d +
                "/run\n"
                "  ncalrpc dir = " +
                d +
                "/run/ncalrpc\n"
                "  binddns dir = " +
                d +
                "/private/bind-dns\n"
                "  log file = " +
                d +
                "/log.%m\n"
                "  smb ports = " +
                std::to_string(port_) +
                "\n"
                "  interfaces = 127.0.0.1\n"
                "  bind interfaces only = yes\n"
                "  server min protocol = SMB2\n"
                "  disable netbios = yes\n"
                "  load printers = no\n"
                "  printing = bsd\n"
                "  printcap name = /dev/null\n"
                "  disable spoolss = yes\n"
                "  kernel change notify = yes\n"
                "[" +
                std::string(kShare) +
                "]\n"
                "  path = " +
                exportDir_ +
                "\n"
                "  read only = no\n"
                "  guest ok = no\n");

  ProcessOptions add;
  add.argv = {kSmbpasswd, "-c", config_, "-a", "-s", kUser};
  add.pipeStdin = true;
  Process adder(std::move(add));
  adder.writeStdin(password_ + "\n" + password_ + "\n");
  adder.closeStdin();
  auto rc = adder.waitExit(Deadline::in(std::chrono::seconds(20)));
  if (!rc || *rc != 0) throw std::runtime_error("smbpasswd -a failed:\n" + adder.transcript());

  ProcessOptions p;
  // --no-process-group: smbd stays in the group Process made, so killing the
  // group takes its per-connection children along.
  p.argv = {kSmbd, "--foreground", "--no-process-group", "--debug-stdout", "-d", "1", "-s", config_};
  process_ = std::make_unique<Process>(std::move(p));
  bool up = waitUntil(Deadline::in(std::chrono::seconds(15)),
                      [&] { return !process_->running() || tcpAccepts("127.0.0.1", port_); });
  if (!up || !process_->running()) {
    throw std::runtime_error("smbd did not accept connections on 127.0.0.1:" + std::to_string(port_) +
                             " within the deadline:\n" + process_->transcript());
  }
}

Samba::~Samba() {
  if (process_) process_->terminate(std::chrono::seconds(2));
}

std::string Samba::smbclient(const std::string& commands) const {
  std::vector<std::string> argv{kSmbclient, std::string("//127.0.0.1/") + kShare,
                                "-p",       std::to_string(port_),
                                "-U",       std::string(kUser) + "%" + password_,
                                "-m",       "SMB3",
                                "-c",       commands};
  auto r = runCommand(argv, Deadline::in(std::chrono::seconds(20)));
  // smbclient -c exits 0 even when a command in the list failed; it prints
  // the NT status then.
  if (r.exitCode != 0 || r.stdoutText.find("NT_STATUS_") != std::string::npos ||
      r.stderrText.find("NT_STATUS_") != std::string::npos) {
    throw std::runtime_error("smbclient failed:\n" + r.describe(argv));
  }
  return r.stdoutText;
}

void Samba::kill() {
  if (!process_) return;
  process_->signal(SIGKILL);
  process_->waitExit(Deadline::in(std::chrono::seconds(5)));
}

}  // namespace rnotify::testbed
