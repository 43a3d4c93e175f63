// The client core with its surroundings given by the test (client/environment.h):
// a mount table whose "sshfs" and "cifs" mounts are local directories, an
// rnotifyd the test runs on a unix socket as the mount's server, and fallback
// sources the test feeds. What is checked is what a user sees through the
// API: which source serves a watch and why the others do not
// (rnotify_watch_source), the events each source hands over, and what
// happens when a source ends, the server appears, goes and comes back.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "client/client.h"
#include "common/unique_fd.h"
#include "rnotify/rnotify.h"
#include "transport/agent_process.h"
#include "transport/connection.h"

namespace rnotify {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// What the test sees of one source it started: what it was asked, what to
// hand over next, and whether the core still holds it.
struct Feed {
  SourceRequest request;
  UniqueFd ready{::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)};
  std::vector<Event> pending;
  Error failure{0, ""};
  bool held = true;
  int takes = 0;
  // An SFTP source's asynchronous parts: its start (starting() until the
  // test says it serves) and its last round when a server takes over
  // (finished() once the test has handed that round in).
  bool starting = false;
  bool slowLastRound = false;
  bool finishAsked = false;
  bool lastRoundIn = false;

  void hand(uint32_t mask, std::string name) {
    Event event;
    event.mask = mask;
    event.name = std::move(name);
    pending.push_back(std::move(event));
    signal();
  }
  void fail(std::string why) {
    failure = Error{EIO, std::move(why)};
    signal();
  }
  void signal() const {
    uint64_t one = 1;
    EXPECT_EQ(::write(ready.get(), &one, sizeof one), static_cast<ssize_t>(sizeof one));
  }
};

class FakeSource final : public WatchSource {
 public:
  explicit FakeSource(std::shared_ptr<Feed> feed) : feed_(std::move(feed)) {}
  ~FakeSource() override { feed_->held = false; }
  SourceKind kind() const override { return feed_->request.kind; }
  int fd() const override { return scans() ? -1 : feed_->ready.get(); }
  // A scan is due every 20 ms.
  Clock::time_point deadline() const override { return scans() ? due_ : Clock::time_point::max(); }
  Result<std::vector<Event>> take() override {
    uint64_t count = 0;
    [[maybe_unused]] ssize_t n = ::read(feed_->ready.get(), &count, sizeof count);
    due_ = Clock::now() + std::chrono::milliseconds(20);
    ++feed_->takes;
    return std::exchange(feed_->pending, {});
  }
  bool starting() const override { return feed_->starting; }
  bool failed() const override { return feed_->failure.code != 0; }
  Error error() const override { return feed_->failure; }
  void finish() override { feed_->finishAsked = true; }
  bool finished() const override { return !feed_->slowLastRound || feed_->lastRoundIn; }
  std::string describe() const override { return std::string("fake ") + sourceKindName(kind()); }

 private:
  std::shared_ptr<Feed> feed_;
  Clock::time_point due_ = Clock::now();
};

// The test's side of the environment: it outlives nothing (the client owns
// the environment), so tests keep a pointer to this state.
struct World {
  std::vector<MountInfo> mounts;
  std::string serverSocket;                // where "the mount's server" listens
  int agentError = 0;                      // the agent's ssh fails with this, when set
  std::map<SourceKind, std::string> fail;  // kinds that do not start, and why
  std::set<SourceKind> slowStart;          // kinds whose start is under way when startSource returns
  std::set<SourceKind> slowLastRound;      // kinds whose last round ends later than finish()
  std::vector<std::shared_ptr<Feed>> feeds;
  std::vector<std::string> smbUsers;  // the users credentials were asked for
  Config config;                      // what the configuration files say

  std::shared_ptr<Feed> feedOf(SourceKind kind) const {
    for (auto it = feeds.rbegin(); it != feeds.rend(); ++it) {
      if ((*it)->request.kind == kind) return *it;
    }
    return nullptr;
  }
};

class FakeEnvironment final : public Environment {
 public:
  explicit FakeEnvironment(World* world) : world_(world) {}
  Result<Config> loadConfig() override { return world_->config; }
  // A loaded machine (sanitizers, 2 cores) may take seconds to connect;
  // reconnections are tried at least every 400 ms.
  ClientTiming timing() override { return ClientTiming{10000, 400}; }
  ResolvedPath resolve(const std::string& realPath) override { return MountResolver(world_->mounts).resolve(realPath); }
  Result<SshTarget> sshTarget(const MountInfo& mount) override { return parseSshfsSource(mount.source); }
  std::string originKey(const SshTarget& /*target*/) override { return ""; }
  Result<std::unique_ptr<Connection>> startAgent(const std::vector<std::string>& /*argv*/,
                                                 const std::string& destination,
                                                 const std::string& /*agentCommand*/) override {
    if (world_->agentError != 0) return Error{world_->agentError, "ssh: connect to host " + destination + ": failed"};
    return Connection::startSocket("unix:" + world_->serverSocket, TlsSettings{}, /*keepalive=*/true);
  }
  Result<std::unique_ptr<Connection>> startSocket(const std::string& endpoint, const TlsSettings& tls) override {
    return Connection::startSocket(endpoint, tls, /*keepalive=*/true);
  }
  Result<SmbCredentials> smbCredentials(const Config& /*config*/, const std::string& user) override {
    world_->smbUsers.push_back(user);
    SmbCredentials credentials;
    credentials.user = user;
    return credentials;
  }
  Result<std::unique_ptr<WatchSource>> startSource(const SourceRequest& request) override {
    if (auto no = world_->fail.find(request.kind); no != world_->fail.end()) return Error{EIO, no->second};
    auto feed = std::make_shared<Feed>();
    feed->request = request;
    feed->starting = world_->slowStart.count(request.kind) > 0;
    feed->slowLastRound = world_->slowLastRound.count(request.kind) > 0;
    world_->feeds.push_back(feed);
    return std::unique_ptr<WatchSource>(std::make_unique<FakeSource>(feed));
  }

 private:
  World* world_;
};

class ClientCore : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/client-core-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    base_ = pattern;
    for (const char* dir : {"/sshfs/dir", "/export/dir", "/cifs/dir"}) fs::create_directories(base_ + dir);
    world_.serverSocket = base_ + "/rnotifyd.sock";
    MountInfo sshfs;
    sshfs.mountPoint = base_ + "/sshfs";
    sshfs.fsType = "fuse.sshfs";
    sshfs.source = "server:" + base_ + "/export";
    MountInfo cifs;
    cifs.mountPoint = base_ + "/cifs";
    cifs.fsType = "cifs";
    cifs.source = "//nas/share";
    cifs.superOptions = "rw,vers=3.1.1,username=alice,port=4445";
    world_.mounts = {sshfs, cifs};
    auto client = Client::create(std::make_unique<FakeEnvironment>(&world_));
    ASSERT_TRUE(client.ok()) << client.error().message;
    client_ = std::move(*client);
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    fs::remove_all(base_);
  }

  // rnotifyd exporting base/export (or `exports`) on the unix socket the
  // agent reaches.
  void startServer(const std::vector<std::string>& exports = {}) {
    std::vector<std::string> argv{RNOTIFYD_PATH, "--listen", "unix:" + world_.serverSocket};
    for (const std::string& e : exports.empty() ? std::vector<std::string>{base_ + "/export"} : exports) {
      argv.insert(argv.end(), {"--export", e});
    }
    auto process = AgentProcess::spawn(argv);
    ASSERT_TRUE(process.ok()) << process.error().message;
    server_ = std::make_unique<AgentProcess>(std::move(*process));
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
      UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      std::strncpy(addr.sun_path, world_.serverSocket.c_str(), sizeof addr.sun_path - 1);
      if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return;
      ::poll(nullptr, 0, 20);  // still starting
    }
    FAIL() << "rnotifyd did not listen: " << server_->stderrText();
  }

  // An "nfs4" mount of `source` at base/nfs, a local directory with dir/ in it.
  void addNfsMount(const std::string& source) {
    fs::create_directories(base_ + "/nfs/dir");
    MountInfo nfs;
    nfs.mountPoint = base_ + "/nfs";
    nfs.fsType = "nfs4";
    nfs.source = source;
    world_.mounts.push_back(nfs);
  }

  int watch(const std::string& path, unsigned flags = 0) {
    auto wd = client_->addWatch(base_ + path, IN_CREATE | IN_DELETE | IN_CLOSE_WRITE, flags);
    EXPECT_TRUE(wd.ok()) << wd.error().message;
    return wd.ok() ? *wd : -1;
  }
  std::string sourceOf(int wd) const {
    const char* source = client_->watchSource(wd);
    return source ? source : "";
  }

  // Events until one matches (at most 10 s); the ones seen, that one last.
  std::vector<ClientEvent> until(const std::function<bool(const ClientEvent&)>& wanted) {
    std::vector<ClientEvent> seen;
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (Clock::now() < deadline) {
      ClientEvent event;
      auto got = client_->next(&event, 50);
      if (!got.ok()) {
        ADD_FAILURE() << got.error().message;
        return seen;
      }
      if (*got == 0) continue;
      seen.push_back(event);
      if (wanted(event)) return seen;
    }
    ADD_FAILURE() << "not seen within 10 s; " << seen.size() << " other events";
    return seen;
  }
  // Runs the client until cond holds (at most 10 s); its events are kept.
  bool runUntil(const std::function<bool()>& cond) {
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!cond()) {
      if (Clock::now() >= deadline) return false;
      ClientEvent event;
      auto got = client_->next(&event, 20);
      if (!got.ok()) return false;
      if (*got == 1) kept_.push_back(event);
    }
    return true;
  }
  static std::function<bool(const ClientEvent&)> named(uint32_t mask, const std::string& name) {
    return [=](const ClientEvent& e) { return (e.mask & mask) == mask && e.name == name; };
  }
  static std::function<bool(const ClientEvent&)> status(int wd, uint32_t mask) {
    return [=](const ClientEvent& e) { return e.wd == wd && (e.mask & mask) == mask; };
  }
  void serverMakes(const std::string& relative) { std::ofstream(base_ + "/export/" + relative) << "x"; }
  // A watch served by SFTP scans whose last round the test completes, and
  // the server started: returned once the core has asked for that round.
  std::shared_ptr<Feed> sftpHandingOver(int* wd) {
    world_.slowLastRound.insert(SourceKind::kSftpScan);
    *wd = watch("/sshfs/dir");  // nothing listens
    auto sftp = world_.feedOf(SourceKind::kSftpScan);
    if (!sftp) return nullptr;
    startServer();
    if (!runUntil([&] { return sftp->finishAsked; })) {
      ADD_FAILURE() << "no hand-over asked for: " << sourceOf(*wd);
      return nullptr;
    }
    return sftp;
  }

  std::string base_;
  World world_;
  std::unique_ptr<AgentProcess> server_;
  std::unique_ptr<Client> client_;
  std::vector<ClientEvent> kept_;
};

TEST_F(ClientCore, EachSourceOfAnSshfsMountIsTriedInItsOrderAndEveryReasonIsTold) {
  world_.fail[SourceKind::kSftpScan] = "subsystem request failed on channel 0";
  int wd = watch("/sshfs/dir");  // no rnotifyd listens (no socket: ENOENT)
  std::string source = sourceOf(wd);
  EXPECT_EQ(source.rfind("fake scans of the mount + local inotify (", 0), 0u) << source;
  const size_t server = source.find("rnotifyd: ");
  const size_t sftp = source.find("SFTP scans: subsystem request failed on channel 0");
  EXPECT_NE(server, std::string::npos) << source;
  EXPECT_NE(sftp, std::string::npos) << source;
  EXPECT_LT(server, sftp) << source;
  // The scan was asked for the path through the mount, with the watch's events.
  auto scan = world_.feedOf(SourceKind::kMountScan);
  ASSERT_TRUE(scan);
  EXPECT_EQ(scan->request.localRoot, base_ + "/sshfs/dir");
  EXPECT_EQ(scan->request.mask, uint32_t{IN_CREATE | IN_DELETE | IN_CLOSE_WRITE});
  EXPECT_FALSE(scan->request.scan.stableInodes);  // a FUSE mount may renumber inodes
}

TEST_F(ClientCore, SftpIsNotTriedWhileSshItselfCannotReachTheServer) {
  world_.agentError = EHOSTUNREACH;
  int wd = watch("/sshfs/dir");
  EXPECT_EQ(world_.feedOf(SourceKind::kSftpScan), nullptr);
  EXPECT_NE(sourceOf(wd).find("SFTP scans: not tried, ssh cannot reach server"), std::string::npos) << sourceOf(wd);
  ASSERT_TRUE(world_.feedOf(SourceKind::kMountScan));
}

TEST_F(ClientCore, SftpScansServeAnSshfsWatchAtTheServersPathAndTheirChangesAreRemote) {
  int wd = watch("/sshfs/dir");
  auto sftp = world_.feedOf(SourceKind::kSftpScan);
  ASSERT_TRUE(sftp);
  EXPECT_EQ(world_.feedOf(SourceKind::kMountScan), nullptr);
  EXPECT_EQ(sftp->request.serverPath, base_ + "/export/dir");
  ASSERT_NE(sftp->request.ssh, nullptr);
  EXPECT_EQ(sftp->request.ssh->destination, "server");
  EXPECT_GE(sftp->takes, 1);  // the baseline, taken before the watch is returned
  sftp->hand(IN_CREATE, "made-elsewhere");
  auto seen = until(named(IN_CREATE, "made-elsewhere"));
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().wd, wd);
  EXPECT_TRUE(seen.back().mask & IN_REMOTE);
  EXPECT_EQ(seen.back().path, base_ + "/sshfs/dir/");
}

// The README's [[server]] entry as written, match and endpoint alone: the
// watch's path is sent as the NFS or SMB client names it (ganesha's pseudo
// path /nfs, the share), and rnotifyd maps it onto the export it named so.
TEST_F(ClientCore, AServerEntryWithoutRemoteRootReachesTheExportByItsName) {
  addNfsMount("nas:/nfs");
  const std::string endpoint = "unix:" + world_.serverSocket;
  world_.config.servers = {{"nas:/nfs", endpoint, ""}, {"//nas/share", endpoint, ""}};
  startServer({"nfs=" + base_ + "/export", "Share=" + base_ + "/export"});
  int onNfs = watch("/nfs/dir");
  int onSmb = watch("/cifs/dir");
  EXPECT_NE(sourceOf(onNfs).find("rnotifyd at " + endpoint), std::string::npos) << sourceOf(onNfs);
  EXPECT_NE(sourceOf(onSmb).find("rnotifyd at " + endpoint), std::string::npos) << sourceOf(onSmb);
  serverMakes("dir/made-on-the-server");
  bool nfsSaw = false, smbSaw = false;
  ASSERT_TRUE(runUntil([&] {
    for (const ClientEvent& e : kept_) {
      if (!(e.mask & IN_REMOTE) || e.name != "made-on-the-server") continue;
      nfsSaw |= e.wd == onNfs && e.path == base_ + "/nfs/dir/";
      smbSaw |= e.wd == onSmb && e.path == base_ + "/cifs/dir/";
    }
    return nfsSaw && smbSaw;
  })) << "REMOTE create seen on nfs: "
      << nfsSaw << ", on smb: " << smbSaw;
}

// A mount whose server does not find its path (an entry that maps it
// wrongly) still gets watched: scans of the mount, and the reason said.
TEST_F(ClientCore, AServerThatDoesNotFindTheMountsPathIsFallenBackFromWithTheReason) {
  addNfsMount("nas:/elsewhere");
  world_.config.servers = {{"nas:/elsewhere", "unix:" + world_.serverSocket, ""}};
  startServer();
  int wd = watch("/nfs/dir");
  ASSERT_GE(wd, 0);
  EXPECT_NE(world_.feedOf(SourceKind::kMountScan), nullptr) << sourceOf(wd);
  EXPECT_NE(sourceOf(wd).find("'/elsewhere/dir' is outside the exported directories"), std::string::npos)
      << sourceOf(wd);
  EXPECT_NE(sourceOf(wd).find("remote_root"), std::string::npos) << sourceOf(wd);
}

TEST_F(ClientCore, ACifsMountUsesTheKernelsChangeNotifyThenLibsmbclientWhenItEnds) {
  int wd = watch("/cifs/dir", RNOTIFY_RECURSIVE);
  auto cifs = world_.feedOf(SourceKind::kCifsIoctl);
  ASSERT_TRUE(cifs);
  EXPECT_TRUE(cifs->request.recursive);
  EXPECT_NE(sourceOf(wd).find("rnotifyd: no rnotifyd endpoint is configured"), std::string::npos) << sourceOf(wd);
  cifs->hand(IN_DELETE, "gone");
  until(named(IN_DELETE | IN_REMOTE, "gone"));
  // The session breaks: the watch is told, and the next source serves it.
  cifs->fail("STATUS_NETWORK_SESSION_EXPIRED");
  until(status(wd, IN_Q_OVERFLOW | IN_REMOTE));
  EXPECT_FALSE(cifs->held);
  auto smb = world_.feedOf(SourceKind::kLibsmbclient);
  ASSERT_TRUE(smb);
  EXPECT_EQ(smb->request.smb.server, "nas");
  EXPECT_EQ(smb->request.smb.port, 4445);
  EXPECT_EQ(smb->request.smb.share, "share");
  EXPECT_EQ(smb->request.smb.path, "dir");
  EXPECT_EQ(world_.smbUsers, std::vector<std::string>{"alice"});
  const std::string source = sourceOf(wd);
  EXPECT_EQ(source.rfind("fake SMB2 change notify through libsmbclient", 0), 0u) << source;
  EXPECT_NE(source.find("STATUS_NETWORK_SESSION_EXPIRED"), std::string::npos) << source;
  smb->hand(IN_CREATE, "after");
  until(named(IN_CREATE | IN_REMOTE, "after"));
}

TEST_F(ClientCore, WhenNoFallbackStartsTheWatchHasLocalEventsAndSaysWhy) {
  world_.fail[SourceKind::kCifsIoctl] = "the kernel's cifs client has no CIFS_IOC_NOTIFY_INFO";
  world_.fail[SourceKind::kLibsmbclient] = "NT_STATUS_LOGON_FAILURE";
  world_.fail[SourceKind::kMountScan] = "no scans in this test";
  int wd = watch("/cifs/dir");
  const std::string source = sourceOf(wd);
  EXPECT_EQ(source.rfind("local inotify (", 0), 0u) << source;
  EXPECT_NE(source.find("NT_STATUS_LOGON_FAILURE"), std::string::npos) << source;
  std::ofstream(base_ + "/cifs/dir/here") << "x";
  auto seen = until(named(IN_CREATE, "here"));
  ASSERT_FALSE(seen.empty());
  EXPECT_FALSE(seen.back().mask & IN_REMOTE);
}

TEST_F(ClientCore, TheServerTakesTheWatchFromItsFallbackOnceItListens) {
  world_.fail[SourceKind::kSftpScan] = "no sftp in this test";
  int wd = watch("/sshfs/dir");
  auto scan = world_.feedOf(SourceKind::kMountScan);
  ASSERT_TRUE(scan);
  scan->hand(IN_CREATE, "seen-by-a-scan");
  until(named(IN_CREATE | IN_REMOTE, "seen-by-a-scan"));
  startServer();
  until(status(wd, IN_RESTORED | IN_REMOTE));
  EXPECT_FALSE(scan->held);  // the scan is let go
  EXPECT_EQ(sourceOf(wd).rfind("rnotifyd at unix:", 0), 0u) << sourceOf(wd);
  serverMakes("dir/made-on-the-server");
  auto seen = until(named(IN_CREATE, "made-on-the-server"));
  ASSERT_FALSE(seen.empty());
  EXPECT_TRUE(seen.back().mask & IN_REMOTE);
}

TEST_F(ClientCore, ANonblockingWatchReturnsAtOnceAndSaysWhenTheServerHasTakenIt) {
  world_.fail[SourceKind::kSftpScan] = "no sftp in this test";
  startServer();
  int wd = watch("/sshfs/dir", RNOTIFY_NONBLOCK);
  EXPECT_EQ(sourceOf(wd).rfind(RNOTIFY_SOURCE_CONNECTING, 0), 0u) << sourceOf(wd);
  until(status(wd, IN_RESTORED | IN_REMOTE));
  EXPECT_EQ(sourceOf(wd).rfind("rnotifyd at unix:", 0), 0u) << sourceOf(wd);
  EXPECT_TRUE(world_.feeds.empty());  // nothing fell back
  serverMakes("dir/made-on-the-server");
  until(named(IN_CREATE | IN_REMOTE, "made-on-the-server"));
}

TEST_F(ClientCore, ANonblockingWatchFallsBackWhenItsFirstAttemptFailsUntilTheServerListens) {
  world_.fail[SourceKind::kSftpScan] = "no sftp in this test";
  int wd = watch("/sshfs/dir", RNOTIFY_NONBLOCK);  // nothing listens
  ASSERT_TRUE(runUntil([&] { return world_.feedOf(SourceKind::kMountScan) != nullptr; }))
      << "no fallback after the first attempt failed: " << sourceOf(wd);
  auto scan = world_.feedOf(SourceKind::kMountScan);
  EXPECT_NE(sourceOf(wd).find("rnotifyd: "), std::string::npos) << sourceOf(wd);
  startServer();
  until(status(wd, IN_RESTORED | IN_REMOTE));
  EXPECT_FALSE(scan->held);
  serverMakes("dir/made-on-the-server");
  until(named(IN_CREATE | IN_REMOTE, "made-on-the-server"));
}

// SFTP scans start in the background (ssh, the SFTP handshake, the first
// listing): one that cannot start gives way to scans of the mount, with its
// reason, and without an overflow, since it never served.
TEST_F(ClientCore, SftpScansThatCannotStartGiveWayToTheMountWithTheirReason) {
  world_.slowStart.insert(SourceKind::kSftpScan);
  int wd = watch("/sshfs/dir", RNOTIFY_NONBLOCK);  // nothing listens
  ASSERT_TRUE(runUntil([&] { return world_.feedOf(SourceKind::kSftpScan) != nullptr; })) << sourceOf(wd);
  auto sftp = world_.feedOf(SourceKind::kSftpScan);
  EXPECT_EQ(world_.feedOf(SourceKind::kMountScan), nullptr);  // not while SFTP is starting
  sftp->fail("Permission denied (publickey)");
  ASSERT_TRUE(runUntil([&] { return world_.feedOf(SourceKind::kMountScan) != nullptr; })) << sourceOf(wd);
  EXPECT_FALSE(sftp->held);
  const std::string source = sourceOf(wd);
  EXPECT_EQ(source.rfind("fake scans of the mount + local inotify (", 0), 0u) << source;
  EXPECT_NE(source.find("SFTP scans: Permission denied (publickey); the mount itself is scanned instead"),
            std::string::npos)
      << source;
  auto scan = world_.feedOf(SourceKind::kMountScan);
  EXPECT_GE(scan->takes, 1);  // its baseline, at once
  scan->hand(IN_CREATE, "seen-by-the-mount-scan");
  auto seen = until(named(IN_CREATE | IN_REMOTE, "seen-by-the-mount-scan"));
  for (const ClientEvent& e : kept_) EXPECT_FALSE(e.mask & IN_Q_OVERFLOW) << e.path << e.name;
  for (const ClientEvent& e : seen) EXPECT_FALSE(e.mask & IN_Q_OVERFLOW) << e.path << e.name;
}

// When the server takes a watch from SFTP scans, their last round (begun
// after the server's watch was made) is reported before IN_RESTORED: the
// changes made up to the server's watch are not lost, however long that
// round takes.
TEST_F(ClientCore, TheServerTakesAWatchFromSftpScansAfterTheirLastRound) {
  int wd = 0;
  auto sftp = sftpHandingOver(&wd);
  ASSERT_TRUE(sftp);
  for (const ClientEvent& e : kept_) EXPECT_FALSE(e.mask & IN_RESTORED) << "restored before the last round";
  EXPECT_TRUE(sftp->held);
  sftp->hand(IN_CREATE, "in-the-last-round");
  sftp->lastRoundIn = true;
  sftp->signal();
  auto seen = until(status(wd, IN_RESTORED | IN_REMOTE));
  seen.insert(seen.begin(), kept_.begin(), kept_.end());
  auto last = std::find_if(seen.begin(), seen.end(), named(IN_CREATE | IN_REMOTE, "in-the-last-round"));
  EXPECT_NE(last, seen.end()) << "the last round's change was not reported before IN_RESTORED";
  EXPECT_FALSE(sftp->held);
  serverMakes("dir/made-on-the-server");
  until(named(IN_CREATE | IN_REMOTE, "made-on-the-server"));
}

// The server goes away again before the last round is in: the scans go on
// serving (nothing is lost meanwhile), and hand over when it is back.
TEST_F(ClientCore, AServerLostDuringTheHandOverLeavesTheScansServingUntilItIsBack) {
  int wd = 0;
  auto sftp = sftpHandingOver(&wd);
  ASSERT_TRUE(sftp);
  server_->kill();
  until(status(wd, IN_Q_OVERFLOW | IN_REMOTE));
  EXPECT_TRUE(sftp->held);
  EXPECT_NE(sourceOf(wd).find("fake SFTP scans + local inotify (lost "), std::string::npos) << sourceOf(wd);
  sftp->finishAsked = false;
  sftp->hand(IN_CREATE, "while-the-server-is-gone");
  until(named(IN_CREATE | IN_REMOTE, "while-the-server-is-gone"));
  startServer();
  ASSERT_TRUE(runUntil([&] { return sftp->finishAsked; })) << "not handed over again: " << sourceOf(wd);
  sftp->lastRoundIn = true;
  sftp->signal();
  until(status(wd, IN_RESTORED | IN_REMOTE));
  EXPECT_FALSE(sftp->held);
  serverMakes("dir/made-on-the-server");
  until(named(IN_CREATE | IN_REMOTE, "made-on-the-server"));
}

// No fallback serves the gap here: the server's listing after the comeback,
// compared with what the client knew, must tell what changed meanwhile.
TEST_F(ClientCore, AServerThatGoesAndComesBackReportsWhatChangedMeanwhile) {
  world_.fail[SourceKind::kSftpScan] = "no sftp in this test";
  world_.fail[SourceKind::kMountScan] = "no scans in this test";
  startServer();
  int wd = watch("/sshfs/dir");
  EXPECT_EQ(sourceOf(wd).rfind("rnotifyd at unix:", 0), 0u) << sourceOf(wd);
  // The watch's first listing, the baseline a comeback is compared with,
  // was asked for inside addWatch, before these were made: it is in once
  // an event made after a round trip arrives.
  serverMakes("dir/before");
  until(named(IN_CREATE | IN_REMOTE, "before"));
  serverMakes("dir/after-a-round-trip");
  until(named(IN_CREATE | IN_REMOTE, "after-a-round-trip"));
  server_->kill();
  until(status(wd, IN_Q_OVERFLOW | IN_REMOTE));
  serverMakes("dir/meanwhile");  // no server sees it: a new one lists it
  startServer();
  // Back: said first, then what was missed, as re-read differences.
  until(status(wd, IN_RESTORED | IN_REMOTE));
  auto seen = until(named(IN_CREATE | IN_SYNTHESIZED | IN_REMOTE, "meanwhile"));
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.back().wd, wd);
  serverMakes("dir/after");
  until(named(IN_CREATE | IN_REMOTE, "after"));
}

// A watch removed while its server is gone finds the connection dead; the
// other watches it served must learn it then, before a new watch on the same
// server makes a new connection (they were left on the dead one, never told).
TEST_F(ClientCore, RemovingAWatchOnADeadConnectionTellsItsOtherWatches) {
  world_.fail[SourceKind::kSftpScan] = "no sftp in this test";
  startServer();
  fs::create_directories(base_ + "/sshfs/other");
  fs::create_directories(base_ + "/export/other");
  int removed = watch("/sshfs/dir");
  int kept = watch("/sshfs/other");
  server_->kill();
  startServer();
  ASSERT_TRUE(client_->removeWatch(removed).ok());
  int added = watch("/sshfs/dir");
  ASSERT_GT(added, 0);
  until(status(kept, IN_Q_OVERFLOW | IN_REMOTE));
  until(status(kept, IN_RESTORED | IN_REMOTE));
  serverMakes("other/still-served");
  until(named(IN_CREATE | IN_REMOTE, "still-served"));
}

}  // namespace
}  // namespace rnotify
