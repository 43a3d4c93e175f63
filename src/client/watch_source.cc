#include "client/watch_source.h"

#include "poll/polled_tree.h"
#include "smb/cifs_notify.h"
#include "smb/smb_notify.h"

namespace rnotify {

const std::vector<SourceKind>& fallbackOrder(MountKind kind) {
  static const std::vector<SourceKind> kSshfs = {SourceKind::kServer, SourceKind::kSftpScan, SourceKind::kMountScan};
  static const std::vector<SourceKind> kNfs = {SourceKind::kServer, SourceKind::kMountScan};
  static const std::vector<SourceKind> kSmb = {SourceKind::kServer, SourceKind::kCifsIoctl, SourceKind::kLibsmbclient,
                                               SourceKind::kMountScan};
  static const std::vector<SourceKind> kOther = {SourceKind::kMountScan};
  static const std::vector<SourceKind> kNone;
  switch (kind) {
    case MountKind::kSshfs:
      return kSshfs;
    case MountKind::kNfs:
      return kNfs;
    case MountKind::kSmb:
      return kSmb;
    case MountKind::kOtherNetwork:
      return kOther;
    case MountKind::kLocal:
      break;
  }
  return kNone;
}

const char* sourceKindName(SourceKind kind) {
  switch (kind) {
    case SourceKind::kServer:
      return "rnotifyd";
    case SourceKind::kCifsIoctl:
      return "SMB2 change notify through the cifs client";
    case SourceKind::kLibsmbclient:
      return "SMB2 change notify through libsmbclient";
    case SourceKind::kSftpScan:
      return "SFTP scans";
    case SourceKind::kMountScan:
      return "scans of the mount";
  }
  return "?";
}

namespace {

class ScanSource final : public WatchSource {
 public:
  ScanSource(std::unique_ptr<PolledTree> tree, SourceKind kind) : tree_(std::move(tree)), kind_(kind) {}
  SourceKind kind() const override { return kind_; }
  int fd() const override { return tree_->fd(); }
  Clock::time_point deadline() const override { return tree_->deadline(); }
  Result<std::vector<Event>> take() override { return tree_->scan(); }
  bool starting() const override { return tree_->starting(); }
  bool failed() const override { return tree_->failed(); }
  Error error() const override { return tree_->error(); }
  void finish() override { tree_->finish(); }
  bool finished() const override { return tree_->finished(); }
  void hurry(Clock::time_point when) override { tree_->hurry(when); }
  bool readsMount() const override { return tree_->readsMount(); }
  std::string describe() const override { return tree_->describe(); }

 private:
  std::unique_ptr<PolledTree> tree_;
  SourceKind kind_;
};

class CifsSource final : public WatchSource {
 public:
  explicit CifsSource(std::unique_ptr<CifsNotify> notify) : notify_(std::move(notify)) {}
  SourceKind kind() const override { return SourceKind::kCifsIoctl; }
  int fd() const override { return notify_->fd(); }
  Result<std::vector<Event>> take() override { return notify_->take(); }
  bool failed() const override { return notify_->failed(); }
  Error error() const override { return notify_->error(); }
  bool openedMount() const override { return true; }
  std::string describe() const override { return "SMB2 change notify (the cifs client's CIFS_IOC_NOTIFY_INFO)"; }

 private:
  std::unique_ptr<CifsNotify> notify_;
};

class SmbSource final : public WatchSource {
 public:
  SmbSource(std::unique_ptr<SmbNotify> notify, std::string shown)
      : notify_(std::move(notify)), shown_(std::move(shown)) {}
  SourceKind kind() const override { return SourceKind::kLibsmbclient; }
  int fd() const override { return notify_->fd(); }
  Result<std::vector<Event>> take() override { return notify_->take(); }
  bool failed() const override { return notify_->failed(); }
  Error error() const override { return notify_->error(); }
  std::string describe() const override { return "SMB2 change notify (libsmbclient, " + shown_ + ")"; }

 private:
  std::unique_ptr<SmbNotify> notify_;
  std::string shown_;
};

}  // namespace

std::unique_ptr<WatchSource> scanSource(std::unique_ptr<PolledTree> tree, SourceKind kind) {
  return std::make_unique<ScanSource>(std::move(tree), kind);
}

std::unique_ptr<WatchSource> cifsSource(std::unique_ptr<CifsNotify> notify) {
  return std::make_unique<CifsSource>(std::move(notify));
}

std::unique_ptr<WatchSource> smbSource(std::unique_ptr<SmbNotify> notify, std::string shown) {
  return std::make_unique<SmbSource>(std::move(notify), std::move(shown));
}

}  // namespace rnotify
