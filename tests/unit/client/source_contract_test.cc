// What every fallback source (client/watch_source.h) promises the client
// core, checked on each real one as systemEnvironment() starts it: scans of a
// directory, SFTP scans through a real sshd, and SMB2 change notify through
// libsmbclient against a real smbd. Changes are made on the server's side
// (the directory the scan, sshd or smbd serves), as another host would.
//
// The differences allowed: SFTP has no inode numbers, so a rename there is
// DELETE + CREATE; the others report MOVED_FROM/MOVED_TO with one cookie
// (smbd too, unless one read of its inotify descriptor splits the pair:
// then DELETE + CREATE, as smb_notify_test describes). SMB2 records do not
// say what kind of entry changed (no IN_ISDIR). And Samba watches its own
// disk only in the watched directory itself (docs/ARCHITECTURE.md, "What
// SMB2 cannot give"): changes in subdirectories are made there through a
// second SMB client, as another host would make them.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/inotify.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

#include "client/environment.h"
#include "samba.h"
#include "sshd.h"
#include "temp_dir.h"

namespace rnotify {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;
using testbed::TempDir;

constexpr uint32_t kMask = IN_CREATE | IN_DELETE | IN_MODIFY | IN_MOVED_FROM | IN_MOVED_TO | IN_CLOSE_WRITE;

// Scans at 50 ms: the contract, not the interval policy, is under test.
PollScanner::Options fastScans(bool recursive) {
  PollScanner::Options options;
  options.interval.initial = std::chrono::milliseconds(50);
  options.interval.min = std::chrono::milliseconds(50);
  options.interval.max = std::chrono::milliseconds(100);
  options.recursive = recursive;
  return options;
}

struct MountScanBed {
  static constexpr SourceKind kKind = SourceKind::kMountScan;
  static constexpr bool kRenamesArePairs = true;
  static std::string missing() { return ""; }
  TempDir dir{"rnotify-source-"};
  std::string serverDir() const { return dir.path(); }
  void makeDirectories() const { fs::create_directories(dir / "dir/sub"); }
  void writeBelow(const std::string& rel, const std::string& content) const { testbed::writeFile(dir / rel, content); }
  SourceRequest request(const std::string& rel, bool recursive) const {
    SourceRequest request;
    request.localRoot = dir / rel;
    request.scan = fastScans(recursive);
    return request;
  }
};

struct SftpScanBed {
  static constexpr SourceKind kKind = SourceKind::kSftpScan;
  static constexpr bool kRenamesArePairs = false;  // SFTP v3 has no inode numbers
  static std::string missing() { return testbed::Sshd::missing(); }
  testbed::Sshd sshd;
  TempDir dir{"rnotify-source-"};
  SshTarget target;
  SftpScanBed() {
    target.destination = "root@127.0.0.1";
    target.sshOptions = {"-F", sshd.clientConfig()};
  }
  std::string serverDir() const { return dir.path(); }
  void makeDirectories() const { fs::create_directories(dir / "dir/sub"); }
  void writeBelow(const std::string& rel, const std::string& content) const { testbed::writeFile(dir / rel, content); }
  SourceRequest request(const std::string& rel, bool recursive) const {
    SourceRequest request;
    request.ssh = &target;
    request.serverPath = dir / rel;
    request.scan = fastScans(recursive);
    return request;
  }
};

struct LibsmbclientBed {
  static constexpr SourceKind kKind = SourceKind::kLibsmbclient;
  static constexpr bool kRenamesArePairs = true;
  static std::string missing() { return testbed::Samba::missing(); }
  testbed::Samba samba;
  TempDir local{"rnotify-source-payload-"};
  std::string serverDir() const { return samba.exportDir(); }
  // Made through SMB: the share's user can then write into them.
  void makeDirectories() const { samba.smbclient("mkdir dir; mkdir dir/sub"); }
  void writeBelow(const std::string& rel, const std::string& content) const {
    testbed::writeFile(local / "payload", content);
    samba.smbclient("put " + (local / "payload") + " " + rel);
  }
  SourceRequest request(const std::string& rel, bool /*recursive*/) const {
    SourceRequest request;
    request.smb = SmbLocation{"127.0.0.1", samba.port(), testbed::Samba::kShare, rel};
    request.credentials = SmbCredentials{testbed::Samba::kUser, samba.password(), ""};
    return request;
  }
};

template <typename Bed>
class SourceContract : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string why = Bed::missing(); !why.empty()) GTEST_SKIP() << why;
    bed_ = std::make_unique<Bed>();
    bed_->makeDirectories();
    testbed::writeFile(server("dir/old.txt"), "old");
  }

  std::string server(const std::string& rel) const { return bed_->serverDir() + "/" + rel; }

  // The source on dir (as the core starts it), its baseline taken.
  std::unique_ptr<WatchSource> start(bool recursive = false) {
    SourceRequest request = bed_->request("dir", recursive);
    request.kind = Bed::kKind;
    request.mask = kMask;
    request.recursive = recursive;
    auto source = systemEnvironment()->startSource(request);
    EXPECT_TRUE(source.ok()) << source.error().message;
    if (!source.ok()) return nullptr;
    if ((*source)->scans()) {
      // The baseline: one take() through the mount; over SFTP, as many as
      // the session's start and first listing take, each without waiting.
      const auto end = Clock::now() + std::chrono::seconds(10);
      do {
        waitFor(**source, end);
        auto baseline = (*source)->take();
        EXPECT_TRUE(baseline.ok()) << baseline.error().message;
        if (!baseline.ok()) return nullptr;
        EXPECT_TRUE(baseline->empty()) << "the baseline reported " << baseline->size() << " events";
      } while ((*source)->starting() && Clock::now() < end);
      EXPECT_FALSE((*source)->starting()) << "not serving after 10 s";
    }
    return std::move(*source);
  }

  // Until the source's descriptor is readable or its deadline has passed
  // (at most 100 ms, and not past `end`): what the core's epoll does.
  // Whether the core would take() now.
  static bool waitFor(WatchSource& source, Clock::time_point end) {
    const auto now = Clock::now();
    auto wait = std::min(end, source.deadline()) - now;
    int ms =
        static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(std::max(wait, Clock::duration::zero())).count());
    ms = std::clamp(ms, 0, 100);
    struct pollfd p = {source.fd(), POLLIN, 0};
    const int ready = ::poll(&p, source.fd() >= 0 ? 1 : 0, ms);
    return ready > 0 || source.deadline() <= Clock::now();
  }

  // Takes from the source as the core does (its descriptor readable, or
  // its deadline passed) until `done` holds for what it reported (10 s).
  bool takeUntil(WatchSource& source, const std::function<bool()>& done) {
    const auto end = Clock::now() + std::chrono::seconds(10);
    while (!done()) {
      const auto now = Clock::now();
      if (now >= end) return false;
      if (!waitFor(source, end)) continue;
      auto events = source.take();
      EXPECT_TRUE(events.ok()) << events.error().message;
      if (events.ok()) seen_.insert(seen_.end(), events->begin(), events->end());
      EXPECT_FALSE(source.failed()) << source.error().message;
    }
    return true;
  }
  const Event* find(uint32_t mask, const std::string& dir, const std::string& name) const {
    for (const Event& e : seen_) {
      if ((e.mask & mask) == mask && e.dir == dir && e.name == name) return &e;
    }
    return nullptr;
  }
  std::function<bool()> reported(uint32_t mask, const std::string& name, const std::string& dir = "") const {
    return [=, this] { return find(mask, dir, name) != nullptr; };
  }
  std::string describeSeen() const {
    std::string out;
    for (const Event& e : seen_) out += std::to_string(e.mask) + " '" + e.dir + "' '" + e.name + "'\n";
    return out;
  }

  std::unique_ptr<Bed> bed_;
  std::vector<Event> seen_;
};

using Beds = ::testing::Types<MountScanBed, SftpScanBed, LibsmbclientBed>;
class BedNames {
 public:
  template <typename T>
  static std::string GetName(int /*index*/) {
    if (std::is_same_v<T, MountScanBed>) return "MountScan";
    if (std::is_same_v<T, SftpScanBed>) return "SftpScan";
    return "Libsmbclient";
  }
};
TYPED_TEST_SUITE(SourceContract, Beds, BedNames);

TYPED_TEST(SourceContract, SaysWhatItIsAndStartsQuiet) {
  auto source = this->start();
  ASSERT_TRUE(source);
  EXPECT_EQ(source->kind(), TypeParam::kKind);
  EXPECT_FALSE(source->describe().empty());
  EXPECT_FALSE(source->failed());
  // Either a descriptor to wait on or a deadline to keep.
  EXPECT_TRUE(source->fd() >= 0 || source->deadline() != WatchSource::Clock::time_point::max());
  EXPECT_EQ(source->scans(), TypeParam::kKind != SourceKind::kLibsmbclient);
}

TYPED_TEST(SourceContract, AFileMadeOnTheServerIsCreated) {
  auto source = this->start();
  ASSERT_TRUE(source);
  testbed::writeFile(this->server("dir/new.txt"), "new");
  EXPECT_TRUE(this->takeUntil(*source, this->reported(IN_CREATE, "new.txt"))) << this->describeSeen();
  const Event* created = this->find(IN_CREATE, "", "new.txt");
  ASSERT_NE(created, nullptr);
  EXPECT_EQ(created->mask & IN_ISDIR, 0u);
  EXPECT_EQ(created->mask & IN_REMOTE, 0u) << "IN_REMOTE is the core's to add";
}

TYPED_TEST(SourceContract, AFileChangedOnTheServerIsModified) {
  auto source = this->start();
  ASSERT_TRUE(source);
  testbed::writeFile(this->server("dir/old.txt"), "changed, and longer");
  EXPECT_TRUE(this->takeUntil(*source, this->reported(IN_MODIFY, "old.txt"))) << this->describeSeen();
}

TYPED_TEST(SourceContract, AFileRemovedOnTheServerIsDeleted) {
  auto source = this->start();
  ASSERT_TRUE(source);
  fs::remove(this->server("dir/old.txt"));
  EXPECT_TRUE(this->takeUntil(*source, this->reported(IN_DELETE, "old.txt"))) << this->describeSeen();
}

TYPED_TEST(SourceContract, ARenameIsOnePairOrDeleteAndCreate) {
  auto source = this->start();
  ASSERT_TRUE(source);
  fs::rename(this->server("dir/old.txt"), this->server("dir/renamed.txt"));
  auto pair = [&] { return this->find(IN_MOVED_FROM, "", "old.txt") && this->find(IN_MOVED_TO, "", "renamed.txt"); };
  auto apart = [&] { return this->find(IN_DELETE, "", "old.txt") && this->find(IN_CREATE, "", "renamed.txt"); };
  ASSERT_TRUE(this->takeUntil(*source, [&] { return pair() || apart(); })) << this->describeSeen();
  if (pair()) {
    EXPECT_TRUE(TypeParam::kRenamesArePairs) << "SFTP cannot pair a rename";
    const uint32_t cookie = this->find(IN_MOVED_FROM, "", "old.txt")->cookie;
    EXPECT_NE(cookie, 0u);
    EXPECT_EQ(cookie, this->find(IN_MOVED_TO, "", "renamed.txt")->cookie);
  } else if (TypeParam::kKind == SourceKind::kMountScan) {
    ADD_FAILURE() << "a scan with inode numbers reported a rename as DELETE + CREATE:\n" << this->describeSeen();
  }
}

TYPED_TEST(SourceContract, ADirectoryMadeOnTheServerIsCreatedAsADirectory) {
  auto source = this->start();
  ASSERT_TRUE(source);
  fs::create_directory(this->server("dir/made"));
  EXPECT_TRUE(this->takeUntil(*source, this->reported(IN_CREATE, "made"))) << this->describeSeen();
  if (TypeParam::kKind != SourceKind::kLibsmbclient) {  // SMB2's notify does not say what kind of entry
    EXPECT_NE(this->find(IN_CREATE, "", "made")->mask & IN_ISDIR, 0u) << this->describeSeen();
  }
}

TYPED_TEST(SourceContract, ARecursiveSourceReportsInsideSubdirectoriesRelativeToItsRoot) {
  auto source = this->start(/*recursive=*/true);
  ASSERT_TRUE(source);
  this->bed_->writeBelow("dir/sub/deep.txt", "deep");
  EXPECT_TRUE(this->takeUntil(*source, this->reported(IN_CREATE, "deep.txt", "sub"))) << this->describeSeen();
}

// Many directories: a scan over SFTP then takes many exchanges, each
// asking for more than the last answered; every round must still finish
// (twice, so that one listing is compared with another).
TYPED_TEST(SourceContract, ABigTreeIsScannedToTheEndEveryTime) {
  if (TypeParam::kKind == SourceKind::kLibsmbclient) GTEST_SKIP() << "not a scan";
  for (int i = 0; i < 300; ++i) {
    fs::create_directories(this->server("dir/sub/d" + std::to_string(i)));
    testbed::writeFile(this->server("dir/sub/d" + std::to_string(i) + "/f"), "x");
  }
  auto source = this->start(/*recursive=*/true);
  ASSERT_TRUE(source);
  testbed::writeFile(this->server("dir/sub/d299/first"), "1");
  EXPECT_TRUE(this->takeUntil(*source, this->reported(IN_CREATE, "first", "sub/d299"))) << this->describeSeen();
  testbed::writeFile(this->server("dir/sub/d0/second"), "2");
  EXPECT_TRUE(this->takeUntil(*source, this->reported(IN_CREATE, "second", "sub/d0"))) << this->describeSeen();
}

TYPED_TEST(SourceContract, APlainSourceStaysOutOfSubdirectories) {
  auto source = this->start(/*recursive=*/false);
  ASSERT_TRUE(source);
  this->bed_->writeBelow("dir/sub/deep.txt", "deep");
  this->bed_->writeBelow("dir/marker.txt", "after");  // made later: reported after it
  ASSERT_TRUE(this->takeUntil(*source, this->reported(IN_CREATE, "marker.txt"))) << this->describeSeen();
  for (const Event& e : this->seen_) EXPECT_NE(e.name, "deep.txt") << this->describeSeen();
}

// SFTP scans wait for a server: their start (ssh, the SFTP handshake) and
// each listing are made over as many take() calls as the answers need, so
// that the core's loop is never held up. Here the "ssh" never answers.
TEST(SftpScanSource, AServerThatNeverAnswersHoldsNothingUpAndFailsAtItsDeadline) {
  TempDir dir{"rnotify-silent-ssh-"};
  const std::string program = dir / "silent-ssh";
  testbed::writeFile(program, "#!/bin/sh\n# takes ssh's arguments and never answers\nexec sleep 600\n");
  fs::permissions(program, fs::perms::owner_all);
  SshTarget target;
  target.sshProgram = program;
  target.destination = "nobody@silent";
  SourceRequest request;
  request.kind = SourceKind::kSftpScan;
  request.ssh = &target;
  request.serverPath = "/srv";
  request.scan = fastScans(false);
  request.startTimeoutMs = 500;
  auto source = systemEnvironment()->startSource(request);
  ASSERT_TRUE(source.ok()) << source.error().message;
  EXPECT_TRUE((*source)->starting());
  EXPECT_GE((*source)->fd(), 0);
  auto first = (*source)->take();
  ASSERT_TRUE(first.ok()) << first.error().message;
  EXPECT_TRUE(first->empty());
  EXPECT_TRUE((*source)->starting());
  EXPECT_FALSE((*source)->failed());
  // As the core does: take() when the descriptor is readable or the
  // deadline has passed. At the deadline, the start has failed, saying why.
  const auto end = Clock::now() + std::chrono::seconds(10);
  while (!(*source)->failed() && Clock::now() < end) {
    const auto wait = std::clamp<int64_t>(
        std::chrono::ceil<std::chrono::milliseconds>((*source)->deadline() - Clock::now()).count(), 0, 100);
    struct pollfd p = {(*source)->fd(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(wait));
    auto taken = (*source)->take();
    if (!(*source)->failed()) {
      EXPECT_TRUE(taken.ok()) << taken.error().message;
    }
  }
  ASSERT_TRUE((*source)->failed()) << "still starting after 10 s";
  EXPECT_TRUE((*source)->starting()) << "it never served";
  EXPECT_NE((*source)->error().message.find("no SFTP answer from nobody@silent in time"), std::string::npos)
      << (*source)->error().message;
}

}  // namespace
}  // namespace rnotify
