// The machine's Environment (environment.h): /proc, the RNOTIFY_* variables,
// the configuration files, ssh, sockets, the cifs client's ioctl,
// rnotify-smb-helper and scans.
#include "client/environment.h"

#include <unistd.h>

#include <cstdlib>

#include "client/connect_timeout.h"
#include "poll/polled_tree.h"
#include "poll/sftp_tree.h"
#include "smb/cifs_notify.h"
#include "smb/smb_notify.h"
#include "transport/connection.h"

namespace rnotify {

namespace {

class SystemEnvironment final : public Environment {
 public:
  Result<Config> loadConfig() override { return rnotify::loadConfig(); }

  ClientTiming timing() override {
    ClientTiming timing;
    timing.connectTimeoutMs = connectTimeoutMs();
    if (const char* env = std::getenv("RNOTIFY_RECONNECT_MAX_MS")) {
      if (int v = std::atoi(env); v > 0) timing.reconnectMaxMs = v;
    }
    return timing;
  }

  ResolvedPath resolve(const std::string& realPath) override { return MountResolver::fromProc().resolve(realPath); }

  Result<SshTarget> sshTarget(const MountInfo& mount) override { return findSshfsTarget(mount); }
  std::string originKey(const SshTarget& target) override { return sshOriginKey(target); }

  Result<std::unique_ptr<Connection>> startAgent(const std::vector<std::string>& argv, const std::string& destination,
                                                 const std::string& agentCommand) override {
    return Connection::startAgent(argv, destination, agentCommand, /*keepalive=*/true);
  }
  Result<std::unique_ptr<Connection>> startSocket(const std::string& endpoint, const TlsSettings& tls) override {
    return Connection::startSocket(endpoint, tls, /*keepalive=*/true);
  }

  Result<SmbCredentials> smbCredentials(const Config& config, const std::string& user) override {
    std::string file = config.smbCredentials;
    if (const char* env = std::getenv("RNOTIFY_SMB_CREDENTIALS"); env != nullptr && *env != '\0') file = env;
    if (file.empty()) {
      const char* home = std::getenv("HOME");
      std::string fallback = std::string(home ? home : "") + "/.config/rnotify/smb-credentials";
      if (home != nullptr && ::access(fallback.c_str(), F_OK) == 0) file = fallback;
    }
    if (file.empty()) {
      SmbCredentials guest;
      guest.user = user;  // no password: a guest, or a share that needs none
      return guest;
    }
    auto credentials = readCredentialsFile(file);
    if (credentials && credentials->user.empty()) credentials->user = user;
    return credentials;
  }

  Result<std::unique_ptr<WatchSource>> startSource(const SourceRequest& request) override {
    switch (request.kind) {
      case SourceKind::kCifsIoctl: {
        auto cifs = CifsNotify::start(request.localRoot, request.mask, request.recursive);
        if (!cifs) return cifs.error();
        return cifsSource(std::move(*cifs));
      }
      case SourceKind::kLibsmbclient: {
        auto smb = SmbNotify::start(request.smb, request.credentials, request.mask, request.recursive);
        if (!smb) return smb.error();
        return smbSource(std::move(*smb), smbUrl(request.smb));
      }
      case SourceKind::kSftpScan: {
        if (request.ssh == nullptr) return Error{EINVAL, "no ssh settings for SFTP scans"};
        auto tree = scanOverSftp(*request.ssh, request.serverPath, request.isDirectory, request.scan,
                                 std::chrono::milliseconds(request.startTimeoutMs));
        if (!tree) return tree.error();
        return scanSource(std::move(*tree), request.kind);
      }
      case SourceKind::kMountScan:
        return scanSource(scanMount(request.localRoot, request.scan), request.kind);
      case SourceKind::kServer:
        break;
    }
    return Error{EINVAL, "rnotifyd is not a fallback source"};
  }
};

}  // namespace

std::unique_ptr<Environment> systemEnvironment() { return std::make_unique<SystemEnvironment>(); }

}  // namespace rnotify
