// SshfsBed; see sshfs_bed.h.
#include "sshfs_bed.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "product.h"

namespace rnotify::testbed {

std::string SshfsBed::missing() {
  if (::geteuid() != 0) return "needs root (sshd, sshfs mounts and network namespaces)";
  if (auto why = Sshd::missing(); !why.empty()) return why;
  return SshfsMount::missing();
}

SshfsBed::SshfsBed(SshfsBedOptions options) : options_(std::move(options)) {
  exportDir_ = dir_.mkdir("export");
  std::string addressForA = "127.0.0.1", addressForB = "127.0.0.1";
  SshdOptions sshdOptions;
  if (options_.useNetns && Netns::available()) {
    netnsServer_ = std::make_unique<Netns>();
    netnsA_ = std::make_unique<Netns>();
    netnsB_ = std::make_unique<Netns>();
    // The server end is "a" (10.213.N.1), the client end "b" (.2).
    linkA_ = std::make_unique<VethLink>(*netnsServer_, netnsA_.get(), 1);
    linkB_ = std::make_unique<VethLink>(*netnsServer_, netnsB_.get(), 2);
    addressForA = linkA_->addressA();
    addressForB = linkB_->addressA();
    sshdOptions.listenAddresses = {addressForA, addressForB};
    sshdOptions.netns = netnsServer_.get();
  }
  sshd_ = std::make_unique<Sshd>(sshdOptions);

  SshfsOptions a;
  a.remote = "root@" + addressForA + ":" + exportDir_;
  a.mountPoint = dir_.mkdir("mnt-a");
  a.sshConfig = sshd_->clientConfig();
  a.port = sshd_->port();
  a.options = options_.mountAOptions;
  a.netns = netnsA_.get();
  mountA_ = std::make_unique<SshfsMount>(a);

  if (options_.withMountB) {
    SshfsOptions b = a;
    b.remote = "root@" + addressForB + ":" + exportDir_;
    b.mountPoint = dir_.mkdir("mnt-b");
    // On loopback, B still comes from another address than A.
    b.sshConfig =
        usesNetns() ? sshd_->clientConfig() : sshd_->writeClientConfig("ssh_config_b", {"BindAddress 127.0.0.2"});
    b.options = options_.mountBOptions;
    b.netns = netnsB_.get();
    mountB_ = std::make_unique<SshfsMount>(b);
  }
}

SshfsBed::~SshfsBed() {
  // Explicit order: mounts before sshd before namespaces (members would do the
  // same in reverse declaration order; this states it).
  mountB_.reset();
  mountA_.reset();
  sshd_.reset();
  linkB_.reset();
  linkA_.reset();
  netnsB_.reset();
  netnsA_.reset();
  netnsServer_.reset();
}

WatcherOptions SshfsBed::watchA(std::vector<std::string> args, const std::string& rel) const {
  WatcherOptions w;
  w.args = std::move(args);
  w.path = rel.empty() ? mountA_->path() : *mountA_ / rel;
  w.netns = netnsA_.get();
  return w;
}

CommandResult SshfsBed::runAsB(const std::vector<std::string>& argv) const {
  return runCommand(argv, Deadline::in(std::chrono::seconds(20)), netnsB_.get());
}

std::string SshfsBed::transcript() const {
  std::string out = "topology: " + std::string(usesNetns() ? "network namespaces" : "loopback") + "\n";
  if (sshd_) out += "--- sshd:\n" + sshd_->transcript();
  if (mountA_) out += "--- sshfs A:\n" + mountA_->transcript();
  if (mountB_) out += "--- sshfs B:\n" + mountB_->transcript();
  return out;
}

std::unique_ptr<SshfsBed> clientBenchBed() {
  SshfsBedOptions options;
  options.useNetns = false;
  options.withMountB = false;
  auto bed = std::make_unique<SshfsBed>(options);
  std::filesystem::create_directory(bed->server("a"));
  ::setenv("RNOTIFY_AGENT", agentCommand().c_str(), 1);
  return bed;
}

}  // namespace rnotify::testbed
