// libFuzzer target for a whole rnotifyd session (issue 15, item 6): not one
// frame, but what a client can do over a connection's life, against a real
// Server (in this process, inotify backend) on a real export with files.
//
// The input is a program, decoded by Program below: its first byte picks who
// the client is (root, the user nobody over a unix socket, an unauthenticated
// TCP-like client, a TLS client that must send a token), then each step is an
// opcode and its fields: one of the client's messages (Hello, Attach, Auth,
// Watch, Unwatch, Snapshot, Ack, Ping, Pong, Declare, Fatal) with fields drawn
// from the input (paths mostly from a table of interesting ones: inside and
// outside the export, through a symlink that leads out, a directory the user
// may not list), encoded with proto::encode so that most frames are valid
// and the session logic, not the decoder, is what gets exercised; or a change
// in the export (create, remove, rename, mkdir, chmod), so that watches,
// snapshots, stat attachments and the journal have events to work on; or the
// connection breaking and a new one coming (resume); or raw bytes. After
// each step the event loop runs until it is idle (bounded), and everything the
// server sends is read and must decode: a server that sends a frame its own
// decoder rejects is a finding, as is any crash, sanitizer report, leak or
// timeout; and so is, for a client that is not root, an event or snapshot
// entry from a directory the user nobody may not list or from outside the
// export (the confinement oracle, Run::checkConfinement).
//
// Seeds: corpus/session/, written by make_session_corpus.py (which mirrors the
// decoding below). Run by hand:
//   mkdir -p /tmp/session-corpus && build-fuzz/tests/fuzz/session_fuzz \
//     /tmp/session-corpus tests/fuzz/corpus/session
#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio.hpp>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/log.h"
#include "proto/codec.h"
#include "server/server.h"
#include "server/transport.h"

namespace {

using namespace rnotify;
namespace fs = std::filesystem;
using LocalSocket = asio::local::stream_protocol::socket;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "session_fuzz: %s\n", what.c_str());
  std::abort();
}

// The export every input works on, made once per process:
//   base/export/{a.txt, dir/{c, sub/d}, private/ (0700) /p, link -> ../outside, scratch/}
//   base/outside/secret
// scratch/ is emptied before each input, so that inputs do not depend on
// the ones before.
struct Tree {
  std::string base, exportDir, scratch;
};

const Tree& tree() {
  // Never destroyed: the atexit handler below needs it after static destructors ran.
  static const Tree* t = [] {
    char pattern[] = "/tmp/session-fuzz-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) fail("mkdtemp");
    Tree made{pattern, std::string(pattern) + "/export", std::string(pattern) + "/export/scratch"};
    fs::create_directories(made.exportDir + "/dir/sub");
    fs::create_directories(made.exportDir + "/private");
    fs::create_directories(made.scratch);
    fs::create_directories(made.base + "/outside");
    std::ofstream(made.exportDir + "/a.txt") << "a";
    std::ofstream(made.exportDir + "/dir/c") << "c";
    std::ofstream(made.exportDir + "/dir/sub/d") << "d";
    std::ofstream(made.exportDir + "/private/p") << "p";
    std::ofstream(made.base + "/outside/secret") << "s";
    fs::create_symlink("../outside", made.exportDir + "/link");
    ::chmod(made.base.c_str(), 0755);
    ::chmod(made.exportDir.c_str(), 0755);
    ::chmod(made.scratch.c_str(), 0777);
    ::chmod((made.exportDir + "/private").c_str(), 0700);
    std::atexit([] {
      std::error_code ignored;
      fs::remove_all(tree().base, ignored);
    });
    return new Tree(std::move(made));
  }();
  return *t;
}

void resetScratch() {
  std::error_code ignored;
  for (const auto& entry : fs::directory_iterator(tree().scratch, ignored)) fs::remove_all(entry.path(), ignored);
}

// Reads the input front to back; past its end every read is 0 / empty.
class Program {
 public:
  Program(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  bool done() const { return p_ == end_; }
  uint8_t byte() { return p_ == end_ ? 0 : *p_++; }
  uint16_t u16() { return static_cast<uint16_t>(byte() | byte() << 8); }
  uint32_t u32() { return u16() | static_cast<uint32_t>(u16()) << 16; }
  uint64_t u64() { return u32() | static_cast<uint64_t>(u32()) << 32; }
  // A length byte, then that many bytes.
  std::string text() {
    size_t n = byte();
    std::string s;
    while (n-- > 0 && !done()) s += static_cast<char>(byte());
    return s;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// Who the client is, as the transport tells the session.
enum class Identity { kRoot, kNobody, kNone, kToken };

// A unix socket whose peer is whoever the input says (the session decides
// what to allow from peer() and awaitsToken()); the token transport accepts
// user "nobody" with token "secret".
class FuzzTransport final : public Transport {
 public:
  FuzzTransport(LocalSocket socket, Identity identity) : socket_(std::move(socket)), identity_(identity) {}
  void asyncReadSome(asio::mutable_buffer buffer, IoHandler handler) override {
    socket_.async_read_some(buffer, std::move(handler));
  }
  void asyncWrite(asio::const_buffer buffer, IoHandler handler) override {
    asio::async_write(socket_, buffer, std::move(handler));
  }
  void close() override {
    std::error_code ignored;
    socket_.shutdown(LocalSocket::shutdown_both, ignored);
    socket_.close(ignored);
  }
  std::string describe() const override { return "fuzz"; }
  std::optional<Peer> peer() const override {
    switch (identity_) {
      case Identity::kRoot:
        return Peer{0, 0, "root", Peer::Method::kUnixSocket};
      case Identity::kNobody:
        return Peer{65534, 65534, "nobody", Peer::Method::kUnixSocket};
      case Identity::kNone:
        return std::nullopt;
      case Identity::kToken:
        if (authenticated_) return Peer{65534, 65534, "nobody", Peer::Method::kToken};
        return std::nullopt;
    }
    return std::nullopt;
  }
  bool awaitsToken() const override { return identity_ == Identity::kToken && !authenticated_; }
  Status authenticate(std::string_view user, std::string_view token) override {
    if (identity_ != Identity::kToken) return Error{EOPNOTSUPP, "not a token transport"};
    if (user != "nobody" || token != "secret") return Error{EACCES, "wrong user or token"};
    authenticated_ = true;
    return {};
  }

 private:
  LocalSocket socket_;
  Identity identity_;
  bool authenticated_ = false;
};

// Opcodes; make_session_corpus.py uses the same numbers.
enum Op : uint8_t {
  kOpHello,
  kOpWatch,
  kOpUnwatch,
  kOpSnapshot,
  kOpAttach,
  kOpAck,
  kOpPing,
  kOpPong,
  kOpDeclare,
  kOpAuth,
  kOpFatal,
  kOpCreate,
  kOpRemove,
  kOpRename,
  kOpMkdir,
  kOpChmod,
  kOpReconnect,
  kOpRaw,
  kOpCount
};

// One fuzz input's world: an io_context, a Server, and the client's end of
// the current connection.
class Run {
 public:
  explicit Run(Identity identity) : identity_(identity) {
    auto exports = ExportRoots::create({tree().exportDir});
    if (!exports) fail("export: " + exports.error().message);
    ServerLimits limits;
    limits.maxWatchesPerClient = 16;
    limits.maxQueuedBytesPerClient = size_t{64} << 10;
    limits.maxClients = 4;
    limits.journalRecords = 32;
    limits.journalBytes = 8192;
    auto server = Server::create(io_, std::move(*exports), limits, WatcherKind::kInotify);
    if (!server) fail("Server::create: " + server.error().message);
    server_ = std::move(*server);
    server_->setResumable(true);
    connect();
  }
  ~Run() {
    client_.reset();
    server_->shutdown();
    pump();
    server_.reset();
  }

  void connect() {
    snapshots_.clear();  // request ids are a connection's
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) fail("socketpair");
    client_.reset(fds[0]);
    ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
    fromServer_ = proto::FrameReader(UINT32_MAX);
    server_->adopt(
        std::make_unique<FuzzTransport>(LocalSocket(io_, asio::local::stream_protocol(), fds[1]), identity_));
    pump();
  }

  void send(const proto::Message& message) {
    if (const auto* snapshot = std::get_if<proto::Snapshot>(&message)) {
      snapshots_[snapshot->requestId] = snapshot->watchId;
    }
    std::string bytes;
    proto::encode(message, bytes);
    sendRaw(bytes);
  }

  // Writes what the socket takes; a server that has stopped reading (its
  // unread-answer limit) may leave the rest unwritten, as a real client's
  // kernel buffer would fill.
  void sendRaw(const std::string& bytes) {
    size_t off = 0;
    for (int attempts = 0; off < bytes.size() && attempts < 8; ++attempts) {
      ssize_t n = ::send(client_.get(), bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0)
        off += static_cast<size_t>(n);
      else if (n < 0 && errno != EAGAIN)
        break;
      pump();
    }
    pump();
  }

  // Runs the loop until nothing is ready (bounded), reading what the server sends.
  void pump() {
    for (int round = 0; round < 64; ++round) {
      size_t ran = io_.poll();
      bool read = drainClient();
      if (ran == 0 && !read) break;
    }
    io_.restart();
  }

  Server& server() { return *server_; }

  // A step that may resume a session (an Attach, or raw bytes that may hold
  // one): the events it brings are replayed from the journal. The daemon
  // judged them when they happened, steps ago, in a state the oracle can
  // no longer see; no file changes in such a step, so every event in it is
  // a replay (or a gap, which names nothing). They are not judged; live
  // events of resumed watches in later steps are.
  void replaying(bool on) { replaying_ = on; }

  // The harness renamed from to to: roots at or below from move; a root at
  // to was an empty directory, replaced.
  void renamed(const std::string& from, const std::string& to) {
    removed(to);
    for (auto& [id, root] : roots_) {
      if (root && within(*root, from)) root = to + root->substr(from.size());
    }
  }
  // The harness removed path and all below it.
  void removed(const std::string& path) {
    for (auto& [id, root] : roots_) {
      if (root && within(*root, path)) root.reset();
    }
  }

 private:
  // Everything the server sent must decode.
  bool drainClient() {
    bool any = false;
    char buffer[65536];
    for (;;) {
      ssize_t n = ::recv(client_.get(), buffer, sizeof buffer, MSG_DONTWAIT);
      if (n <= 0) break;
      any = true;
      fromServer_.feed(std::string_view(buffer, static_cast<size_t>(n)));
      for (;;) {
        auto next = fromServer_.next();
        if (!next) fail("the server sent a frame that does not decode: " + next.error().message);
        if (!next->has_value()) break;
        if (auto status = proto::validate(**next); !status) {
          fail("the server sent a frame that does not validate: " + status.error().message);
        }
        checkConfinement(**next);
      }
    }
    return any;
  }

  // The confinement oracle: a client that is not root must never learn
  // about an entry of a directory the user nobody cannot list, nor about
  // anything outside the export. Checked when the frame arrives: the input
  // changes nothing while the loop runs, so the permissions are those the
  // server saw when it read the event or listed the directory.
  void checkConfinement(const proto::Message& message) {
    if (identity_ == Identity::kRoot) return;
    if (const auto* reply = std::get_if<proto::Reply>(&message)) {
      // A granted Watch: the message is the resolved root.
      if (reply->status == 0 && reply->watchId != 0 && !reply->message.empty() && reply->message[0] == '/') {
        roots_[reply->watchId] = reply->message;
      }
    } else if (const auto* events = std::get_if<proto::Events>(&message); events != nullptr && !replaying_) {
      for (const Event& e : events->events) {
        if (!e.name.empty()) checkEntry(e.watch, e.dir, e.name, "an event");
      }
    } else if (const auto* entries = std::get_if<proto::Entries>(&message)) {
      auto it = snapshots_.find(entries->requestId);
      for (const proto::TreeEntry& e : entries->entries) {
        if (it != snapshots_.end()) checkEntry(it->second, e.dir, e.name, "a snapshot entry");
      }
    }
  }

  void checkEntry(uint32_t watchId, const std::string& dir, const std::string& name, const char* what) {
    auto root = roots_.find(watchId);
    if (root == roots_.end() || !root->second) return;  // not judged, or gone since: nothing to tell
    const std::string& now = *root->second;
    const std::string parent = dir.empty() ? now : now + "/" + dir;
    if (!nobodyMayList(parent))
      fail(std::string(what) + " about '" + name + "' in '" + parent + "', which nobody may not list");
  }

  static bool within(const std::string& path, const std::string& top) {
    return path.size() >= top.size() && path.compare(0, top.size(), top) == 0 &&
           (path.size() == top.size() || path[top.size()] == '/');
  }

  // Every directory from the export down to path searchable by others, and
  // path readable (the export's ancestors are 0755).
  static bool nobodyMayList(const std::string& path) {
    const std::string& top = tree().exportDir;
    if (path != top && path.rfind(top + "/", 0) != 0) return false;  // outside the export
    std::string current = top;
    std::string rest = path.substr(top.size());
    for (;;) {
      struct stat st;
      if (::lstat(current.c_str(), &st) != 0) return true;  // gone since: nothing to tell
      if (!S_ISDIR(st.st_mode) || !(st.st_mode & S_IXOTH)) return false;
      if (rest.empty()) return (st.st_mode & S_IROTH) != 0;
      size_t next = rest.find('/', 1);
      current += rest.substr(0, next);
      rest = next == std::string::npos ? "" : rest.substr(next);
    }
  }

  // Watch id -> where its root is now (nothing once removed), from granted
  // Watches (ids are the Server's, never reused, and a resumed session keeps
  // them). The daemon's watch follows its directory through renames, as
  // inotify's does, so the path it had when granted may name another entry
  // later. The harness makes every rename and removal itself (step()), and
  // follows the roots here: it opens nothing (nobodyMayList only lstats,
  // which is no inotify event) and borrows nothing from the daemon's own
  // way of finding them.
  std::unordered_map<uint32_t, std::optional<std::string>> roots_;
  bool replaying_ = false;
  std::unordered_map<uint32_t, uint32_t> snapshots_;  // Snapshot request id -> watch id
  asio::io_context io_{1};
  Identity identity_;
  std::unique_ptr<Server> server_;
  UniqueFd client_;
  proto::FrameReader fromServer_{UINT32_MAX};
};

std::string pickPath(Program& in) {
  const Tree& t = tree();
  switch (in.byte() % 20) {
    case 0:
      return t.exportDir;
    case 1:
      return t.exportDir + "/dir";
    case 2:
      return t.exportDir + "/dir/sub";
    case 3:
      return t.exportDir + "/private";
    case 4:
      return t.exportDir + "/link";
    case 5:
      return t.exportDir + "/link/secret";
    case 6:
      return t.scratch;
    case 7:
      return t.scratch + "/n" + std::to_string(in.byte() % 4);
    case 8:
      return t.exportDir + "/a.txt";
    case 9:
      return t.base + "/outside";
    case 10:
      return t.exportDir + "/../outside";
    case 11:
      return "";
    case 12:
      return t.exportDir + "/missing";
    case 13:
      return "/";
    case 14:
      return "export/dir";  // relative to the server's working directory
    case 15:
      return t.exportDir + "/dir/./sub/..";
    case 16:
      return t.exportDir + "/private/p";
    case 17:
      return t.exportDir + "/dir/" + in.text();
    default:
      return in.text();
  }
}

uint32_t pickMask(Program& in) {
  switch (in.byte() % 4) {
    case 0:
      return IN_ALL_EVENTS;
    case 1:
      return IN_CREATE | IN_DELETE | IN_MOVE;
    case 2:
      return 0;
    default:
      return in.u32();
  }
}

uint32_t pickWatchId(Program& in) {
  uint8_t b = in.byte();
  return b < 240 ? b % 12 : in.u32();  // ids are small: most name a watch that exists, or existed
}

std::vector<proto::WatchPosition> pickPositions(Program& in) {
  std::vector<proto::WatchPosition> positions(in.byte() % 6);
  for (auto& p : positions) {
    p.watchId = pickWatchId(in);
    uint8_t b = in.byte();
    p.seq = b < 200 ? b % 40 : in.u64();
  }
  return positions;
}

// A name in scratch/ (a few, so that creates, renames and removes meet).
std::string scratchName(Program& in) {
  uint8_t b = in.byte();
  return tree().scratch + (b & 0x80 ? "/n" + std::to_string(b % 3) + "/m" : "/n") + std::to_string(b % 4);
}

void step(Run& run, Program& in) {
  const uint8_t op = in.byte() % kOpCount;
  switch (op) {
    case kOpHello: {
      proto::Hello m;
      uint8_t b = in.byte();
      m.minVersion = b & 0x80 ? in.u16() : 1;
      m.maxVersion = b & 0x40 ? in.u16() : 1;
      m.capabilities = b & 0x1f;
      m.clientName = in.text();
      run.send(m);
      break;
    }
    case kOpWatch: {
      proto::Watch m;
      m.requestId = in.byte();
      uint8_t f = in.byte();
      m.flags = f < 240 ? f & 0x0f : in.u32();
      m.mask = pickMask(in);
      m.path = pickPath(in);
      run.send(m);
      break;
    }
    case kOpUnwatch:
      run.send(proto::Unwatch{in.byte(), pickWatchId(in)});
      break;
    case kOpSnapshot:
      run.send(proto::Snapshot{in.byte(), pickWatchId(in)});
      break;
    case kOpAttach: {
      proto::Attach m;
      m.requestId = in.byte();
      uint8_t b = in.byte();
      // A few tokens, so that a later connection can name an earlier session.
      m.token[0] = b % 3;
      m.token[1] = b & 0x80 ? in.u64() : 7;
      m.instanceId = (b & 0x40) ? run.server().instanceId() : (b & 0x20) ? in.u64() : 0;
      m.positions = pickPositions(in);
      run.replaying(true);
      run.send(m);
      run.replaying(false);
      break;
    }
    case kOpAck:
      run.send(proto::Ack{pickPositions(in)});
      break;
    case kOpPing:
      run.send(proto::Ping{in.u64()});
      break;
    case kOpPong:
      run.send(proto::Pong{in.u64()});
      break;
    case kOpDeclare: {
      proto::Declare m;
      m.requestId = in.byte();
      m.origins.resize(in.byte() % 4);
      for (auto& o : m.origins) o = in.text();
      run.send(m);
      break;
    }
    case kOpAuth: {
      proto::Auth m;
      m.requestId = in.byte();
      uint8_t b = in.byte();
      m.user = b & 1 ? "nobody" : b & 2 ? "root" : in.text();
      m.token = b & 4 ? "secret" : in.text();
      run.send(m);
      break;
    }
    case kOpFatal:
      run.send(proto::Fatal{static_cast<int32_t>(in.byte() % 2 ? 0 : in.u32()), in.text()});
      break;
    case kOpCreate:
      std::ofstream(scratchName(in)) << in.text();
      run.pump();
      break;
    case kOpRemove: {
      const std::string path = scratchName(in);
      std::error_code failed;
      const auto removed = fs::remove_all(path, failed);
      if (!failed && removed > 0) run.removed(path);
      run.pump();
      break;
    }
    case kOpRename: {
      std::string from = scratchName(in), to = scratchName(in);
      std::error_code failed;
      fs::rename(from, to, failed);
      if (!failed && from != to) run.renamed(from, to);
      run.pump();
      break;
    }
    case kOpMkdir: {
      std::error_code ignored;
      fs::create_directory(scratchName(in), ignored);
      run.pump();
      break;
    }
    case kOpChmod: {
      std::string path = scratchName(in);
      ::chmod(path.c_str(), in.byte() % 2 ? 0700 : 0755);
      run.pump();
      break;
    }
    case kOpReconnect:
      run.connect();
      break;
    case kOpRaw:
      run.replaying(true);
      run.sendRaw(in.text());
      run.replaying(false);
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  // Quiet unless asked (RNOTIFY_LOG_LEVEL): a log line per frame would be most of the run's time.
  if (std::getenv("RNOTIFY_LOG_LEVEL") == nullptr) log::setLevel(log::Level::kOff);
  ::signal(SIGPIPE, SIG_IGN);
  // Entries the inputs make are 0755/0644 whatever the caller's umask: the
  // seeds' private directories are private only where a chmod says so.
  ::umask(022);
  tree();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Long programs add little and slow everything down.
  constexpr size_t kMaxSteps = 64;
  Program in(data, size);
  resetScratch();
  Run run(static_cast<Identity>(in.byte() % 4));
  for (size_t i = 0; i < kMaxSteps && !in.done(); ++i) step(run, in);
  return 0;
}
