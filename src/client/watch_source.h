// WatchSource: one watch's remote events when no rnotifyd serves it. Four
// kinds, one interface for the client core: SMB2 change notify through the
// cifs client's ioctl or through libsmbclient (a descriptor that becomes
// readable), and scans of the tree over SFTP or through the mount (a
// deadline). rnotifyd itself is not one: its connection serves many watches.
//
// Which kinds a watch may use, and in which order they are tried, is data:
// fallbackOrder() per kind of mount. The core tries each in turn, keeps the
// first that starts, and remembers why the others were skipped, so that
// rnotify_watch_source() (and rnotifywait -v) can tell all of it.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "event/event.h"
#include "mounts/mount_resolver.h"

namespace rnotify {

class PolledTree;
class CifsNotify;
class SmbNotify;

// What can serve a watch's remote side, rnotifyd included.
enum class SourceKind { kServer, kCifsIoctl, kLibsmbclient, kSftpScan, kMountScan };

// The order in which a watch on this kind of mount tries its sources.
// Empty for local filesystems: the local kernel sees everything.
const std::vector<SourceKind>& fallbackOrder(MountKind kind);
// "rnotifyd", "the cifs client's change notify", ... for messages.
const char* sourceKindName(SourceKind kind);

class WatchSource {
 public:
  using Clock = std::chrono::steady_clock;
  virtual ~WatchSource() = default;

  virtual SourceKind kind() const = 0;
  // Scans find changes by comparing: the first take() is the baseline, and
  // a last take() hands over to a server without a gap.
  bool scans() const { return kind() == SourceKind::kSftpScan || kind() == SourceKind::kMountScan; }
  // A descriptor readable when take() has something (-1: none; deadline()).
  virtual int fd() const { return -1; }
  // When take() is due without the descriptor (max: never).
  virtual Clock::time_point deadline() const { return Clock::time_point::max(); }
  // Events relative to the watched directory. An error: this round failed
  // (a scan), and the next is tried at the next deadline.
  virtual Result<std::vector<Event>> take() = 0;
  // Not serving yet: its start (an SFTP session's handshake, the first
  // scan) is under way, and take() reports nothing until it serves. Also
  // while a session that replaced a broken one has not scanned yet (its
  // first scan is compared with the last one before the break).
  virtual bool starting() const { return false; }
  // The source has ended for good, error() says why: while starting(), it
  // could not start (the next source is tried); otherwise it broke after
  // serving (an SMB session ended: an overflow is reported).
  virtual bool failed() const { return false; }
  virtual Error error() const { return Error{0, ""}; }
  // Handing over to a server: the round that starts after finish() is the
  // last, and finished() once take() has returned it: SFTP scans and scans
  // of the mount (which finish a scan under way first) over as many calls
  // as that takes; other sources at once.
  virtual void finish() {}
  virtual bool finished() const { return true; }
  // This host just changed something in the tree: look no later than when.
  virtual void hurry(Clock::time_point /*when*/) {}
  // Its reads go through the mount, so this host's kernel reports them.
  virtual bool readsMount() const { return false; }
  // Its start opened the watched directory through the mount (the cifs
  // ioctl needs an open directory): this host's kernel reports that OPEN.
  virtual bool openedMount() const { return false; }
  // "polling every 2 s (...), scans of the mount", "SMB2 change notify (...)".
  virtual std::string describe() const = 0;
};

std::unique_ptr<WatchSource> scanSource(std::unique_ptr<PolledTree> tree, SourceKind kind);
std::unique_ptr<WatchSource> cifsSource(std::unique_ptr<CifsNotify> notify);
// shown: the share's URL, without credentials.
std::unique_ptr<WatchSource> smbSource(std::unique_ptr<SmbNotify> notify, std::string shown);

}  // namespace rnotify
