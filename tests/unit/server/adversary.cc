#include "adversary.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <new>
#include <sstream>

namespace rnotify::adversary {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

void makeDir(const std::string& path, mode_t mode, uid_t owner = 0) {
  ::mkdir(path.c_str(), mode);
  ::chown(path.c_str(), owner, owner);
  ::chmod(path.c_str(), mode);  // not reduced by the umask
}

void makeSecretFile(const std::string& path) {
  std::ofstream(path) << std::string(kSecretSize + static_cast<size_t>(std::rand() % 997), 's');
}

// A decoy: the names nobody uses, holding secrets.
void makeDecoy(const std::string& dir, mode_t mode) {
  makeDir(dir, mode);
  for (int i = 0; i < 4; ++i) {
    makeDir(dir + "/d" + std::to_string(i), 0755);
    makeSecretFile(dir + "/d" + std::to_string(i) + "/" + kMarker + "in" + std::to_string(i));
    makeSecretFile(dir + "/d" + std::to_string(i) + "/f0");
    makeSecretFile(dir + "/f" + std::to_string(i));
  }
  makeSecretFile(dir + "/" + kMarker + "top");
}

void recordDirInos(const std::string& root, std::set<uint64_t>& inos) {
  struct stat st;
  if (::lstat(root.c_str(), &st) == 0) inos.insert(st.st_ino);
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISDIR(st.st_mode)) inos.insert(st.st_ino);
  }
}

std::string printable(std::string_view text, size_t limit = 300) {
  std::string out;
  for (char c : text.substr(0, limit)) {
    char escaped[8];
    std::snprintf(escaped, sizeof escaped, "\\x%02x", static_cast<unsigned char>(c));
    out += c >= 32 && c < 127 ? std::string(1, c) : std::string(escaped);
  }
  if (text.size() > limit) out += "...";
  return out;
}

}  // namespace

bool isNobodyName(const std::string& name) {
  static const std::set<std::string> shown = {"mid", "alt", "lnk", "rootonly", "H", "zl"};
  if (shown.count(name)) return true;
  if (name.empty() || name[0] < 'a' || name[0] > 'z') return false;
  for (size_t i = 1; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
  }
  return true;
}

Result<Scene> Scene::make() {
  Scene s;
  char pattern[] = "/tmp/rnotify-adv-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) return lastError("mkdtemp");
  s.base = pattern;
  s.remover_.path = s.base;
  ::chmod(s.base.c_str(), 0755);
  s.exportDir = s.base + "/export";
  s.mid = s.exportDir + "/mid";
  s.alt = s.exportDir + "/alt";
  s.lnk = s.exportDir + "/lnk";
  s.hostile = s.mid + "/H";
  s.rootOnly = s.exportDir + "/rootonly";
  s.secret = s.base + "/" + kMarker + "s";
  s.outside = s.base + "/" + kMarker + "o";
  s.socket = s.base + "/s.sock";
  makeDir(s.exportDir, 0755);
  makeDir(s.mid, 0711);
  makeDir(s.hostile, 0755, kNobody);
  makeDir(s.secret, 0700);
  makeDecoy(s.secret + "/decoy", 0755);
  makeDir(s.secret + "/decoy/p", 0755);
  makeDir(s.secret + "/decoyroot", 0755);
  makeDecoy(s.secret + "/decoyroot/H", 0755);
  makeDir(s.secret + "/locked", 0700);
  makeDecoy(s.secret + "/locked/open", 0755);
  makeDir(s.secret + "/jail", 0700);
  makeDecoy(s.outside, 0755);
  makeDecoy(s.rootOnly, 0700);
  makeDir(s.alt, 0711);
  makeDecoy(s.alt + "/H", 0700);
  if (::symlink((s.secret + "/decoyroot").c_str(), s.lnk.c_str()) != 0) return lastError("symlink lnk");
  if (::symlink((s.secret + "/decoy").c_str(), (s.hostile + "/zl").c_str()) != 0) return lastError("symlink zl");
  ::lchown((s.hostile + "/zl").c_str(), kNobody, kNobody);
  for (const std::string& root : {s.secret, s.outside, s.rootOnly, s.alt + "/H"}) recordDirInos(root, s.secretDirInos);
  struct stat st;
  // R itself is listed in E, which nobody may list: only what is inside R is secret.
  if (::stat(s.rootOnly.c_str(), &st) == 0) s.secretDirInos.erase(st.st_ino);
  for (const char* top : {"/", "/tmp"}) {
    if (::stat(top, &st) == 0) s.secretDirInos.insert(st.st_ino);
  }
  if (::stat(s.base.c_str(), &st) == 0) s.secretDirInos.insert(st.st_ino);
  return s;
}

Scene::~Scene() {
  if (daemon_.pid() > 0) {
    ::kill(daemon_.pid(), SIGTERM);
    if (daemon_.reap(5000) < 0) {
      ::kill(daemon_.pid(), SIGKILL);
      daemon_.reap(5000);
    }
  }
}

Scene::Remover::~Remover() {
  std::error_code ignored;
  if (!path.empty()) fs::remove_all(path, ignored);
}

Status Scene::startDaemon() {
  // RNOTIFY_ADVERSARY_DAEMON: another rnotifyd binary to attack (a merge
  // candidate) with the same test binary.
  const char* daemon = std::getenv("RNOTIFY_ADVERSARY_DAEMON");
  auto p = AgentProcess::spawn({daemon && *daemon ? daemon : RNOTIFYD_PATH, "--listen", "unix:" + socket, "--export",
                                exportDir, "--log-file", base + "/rnotifyd.log"});
  if (!p) return p.error();
  daemon_ = std::move(*p);
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (::access(socket.c_str(), F_OK) != 0 && Clock::now() < deadline) ::poll(nullptr, 0, 20);
  if (::chmod(socket.c_str(), 0777) != 0) return Error{ENOENT, "rnotifyd made no socket: " + daemon_.stderrText()};
  return {};
}

bool Scene::daemonAlive() { return daemon_.pid() > 0 && daemon_.reap(0) < 0; }

std::string Scene::daemonLogTail(size_t bytes) const {
  std::ifstream in(base + "/rnotifyd.log");
  std::stringstream all;
  all << in.rdbuf();
  std::string text = all.str();
  return text.size() > bytes ? text.substr(text.size() - bytes) : text;
}

std::string Scene::brief(std::string text) const {
  for (size_t at; !base.empty() && (at = text.find(base)) != std::string::npos;) text.replace(at, base.size(), "B");
  return text;
}

const char* failureName(int kind) {
  static const char* names[] = {"a name nobody may not see", "the state of a secret object",
                                "a path outside the export", "an answer that tells whether a forbidden path exists"};
  return kind >= 0 && kind < static_cast<int>(Shared::kKinds) ? names[kind] : "?";
}

SharedRegion::SharedRegion() {
  void* p = ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) std::abort();
  shared_ = new (p) Shared();
  for (auto& f : shared_->failed) f = 0;
}

SharedRegion::~SharedRegion() {
  shared_->~Shared();
  ::munmap(shared_, sizeof(Shared));
}

void noteOp(Shared& shared, const char* actor, const std::string& what) {
  uint64_t n = shared.ops.fetch_add(1) + 1;
  uint64_t slot = shared.ringNext.fetch_add(1) % Shared::kRing;
  std::snprintf(shared.ring[slot], sizeof shared.ring[slot], "#%llu %s: %s", static_cast<unsigned long long>(n), actor,
                what.c_str());
}

std::string lastOps(const Shared& shared, size_t count) {
  uint64_t end = shared.ringNext.load();
  count = std::min<size_t>({count, Shared::kRing, end});
  std::string out;
  for (uint64_t i = end - count; i < end; ++i) out += std::string("  ") + shared.ring[i % Shared::kRing] + "\n";
  return out;
}

void recordFailure(Shared& shared, Failure kind, const std::string& what) {
  int expected = 0;
  if (!shared.failed[kind].compare_exchange_strong(expected, 1)) return;
  std::string text =
      what + "\nafter " + std::to_string(shared.ops.load()) + " operations; the last ones:\n" + lastOps(shared, 50);
  std::snprintf(shared.failure[kind], sizeof shared.failure[kind], "%s", text.c_str());
  shared.failed[kind] = 2;
}

bool becomeNobody() {
  return ::setgroups(0, nullptr) == 0 && ::setresgid(kNobody, kNobody, kNobody) == 0 &&
         ::setresuid(kNobody, kNobody, kNobody) == 0;
}

std::string Oracle::checkPath(const std::string& dir, const std::string& name) const {
  std::string all = dir.empty() ? name : dir + "/" + name;
  size_t start = 0;
  while (start <= all.size()) {
    size_t slash = all.find('/', start);
    if (slash == std::string::npos) slash = all.size();
    std::string part = all.substr(start, slash - start);
    if (!part.empty() && !isNobodyName(part)) return "the name '" + printable(part) + "' in '" + printable(all) + "'";
    start = slash + 1;
  }
  return {};
}

std::string Oracle::checkStat(const EventStat& stat) const {
  if (S_ISREG(stat.mode) && stat.size >= kSecretSize) {
    return "a regular file of " + std::to_string(stat.size) + " bytes (ino " + std::to_string(stat.ino) +
           "): only secret files are that large";
  }
  if (S_ISDIR(stat.mode) && scene_.secretDirInos.count(stat.ino)) {
    return "the state of secret directory inode " + std::to_string(stat.ino);
  }
  return {};
}

std::string Oracle::checkEvent(const Event& event) const { return checkPath(event.dir, event.name); }

std::string Oracle::checkEntry(const proto::TreeEntry& entry) const { return checkPath(entry.dir, entry.name); }

std::optional<std::pair<Failure, std::string>> Oracle::checkText(const std::string& text,
                                                                 const std::string& requested) const {
  // The request, quoted, is its echo; unquoted it may be the tail of a path
  // the server names ("/export/x" mapped by the export's name).
  std::string rest = text;
  if (!requested.empty()) {
    const std::string echoed = "'" + requested + "'";
    for (size_t at; (at = rest.find(echoed)) != std::string::npos;) rest.replace(at, echoed.size(), "'<P>'");
  }
  if (rest.find(kMarker) != std::string::npos)
    return std::make_pair(kLeakedName, "marker in '" + printable(text) + "'");
  for (size_t at = 0; (at = rest.find(scene_.base, at)) != std::string::npos; at += scene_.base.size()) {
    if (rest.compare(at, scene_.exportDir.size(), scene_.exportDir) != 0 ||
        (rest.size() > at + scene_.exportDir.size() && rest[at + scene_.exportDir.size()] != '/' &&
         rest[at + scene_.exportDir.size()] != '\'' && rest[at + scene_.exportDir.size()] != ' ')) {
      return std::make_pair(kNamedOutside, "a path outside the export in '" + printable(text) + "'");
    }
  }
  return std::nullopt;
}

Result<RawClient> RawClient::connect(const std::string& socket, uint64_t capabilities, int timeoutMs) {
  RawClient c;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", socket.c_str());
  c.fd_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!c.fd_ || ::connect(c.fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    return lastError("connect " + socket);
  }
  proto::Hello hello;
  hello.capabilities = capabilities;
  hello.clientName = "adversary";
  c.send(hello);
  bool welcomed = false;
  auto deadline = Clock::now() + std::chrono::milliseconds(timeoutMs);
  while (!welcomed && Clock::now() < deadline) {
    if (!c.pump(50, [&](proto::Message& m) {
          if (auto* w = std::get_if<proto::Welcome>(&m)) {
            c.welcome_ = *w;
            welcomed = true;
          }
        })) {
      break;
    }
  }
  if (!welcomed) return Error{ETIMEDOUT, "no Welcome from rnotifyd"};
  return c;
}

uint32_t RawClient::send(proto::Message message) {
  uint32_t id = nextRequest_++;
  std::visit(
      [&](auto& m) {
        if constexpr (requires { m.requestId; }) m.requestId = id;
      },
      message);
  std::string frame;
  proto::encode(message, frame);
  std::string_view rest(frame);
  while (!rest.empty()) {
    ssize_t n = ::send(fd_.get(), rest.data(), rest.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    rest.remove_prefix(static_cast<size_t>(n));
  }
  return id;
}

bool RawClient::pump(int timeoutMs, const FrameHandler& onFrame) {
  struct pollfd p = {fd_.get(), POLLIN, 0};
  if (::poll(&p, 1, timeoutMs) <= 0) return true;
  char buffer[64 * 1024];
  ssize_t n = ::recv(fd_.get(), buffer, sizeof buffer, MSG_DONTWAIT);
  if (n < 0) return errno == EAGAIN || errno == EINTR;
  if (n == 0) return false;
  reader_.feed(std::string_view(buffer, static_cast<size_t>(n)));
  for (;;) {
    auto next = reader_.next();
    if (!next) return false;
    if (!next->has_value()) return true;
    if (auto* ping = std::get_if<proto::Ping>(&**next)) send(proto::Pong{ping->token});
    onFrame(**next);
    if (std::holds_alternative<proto::Fatal>(**next)) return false;
  }
}

std::string describe(const Event& e) {
  std::string out = "event watch " + std::to_string(e.watch) + " mask 0x";
  char hex[16];
  std::snprintf(hex, sizeof hex, "%x", e.mask);
  out += hex;
  out += " dir '" + printable(e.dir) + "' name '" + printable(e.name) + "'";
  if (e.hasStat) {
    char mode[16];
    std::snprintf(mode, sizeof mode, "0%o", e.stat.mode);
    out += " stat{ino " + std::to_string(e.stat.ino) + ", size " + std::to_string(e.stat.size) + ", mode " + mode +
           ", uid " + std::to_string(e.stat.uid) + "}";
  }
  return out;
}

std::string describe(const proto::Message& message) {
  if (auto* r = std::get_if<proto::Reply>(&message)) {
    return "Reply{request " + std::to_string(r->requestId) + ", status " + std::to_string(r->status) + ", watch " +
           std::to_string(r->watchId) + ", '" + printable(r->message) + "'}";
  }
  if (auto* f = std::get_if<proto::Fatal>(&message)) return "Fatal{" + printable(f->message) + "}";
  if (auto* e = std::get_if<proto::Entries>(&message)) {
    return "Entries{request " + std::to_string(e->requestId) + ", " + std::to_string(e->entries.size()) + " entries}";
  }
  if (auto* e = std::get_if<proto::Events>(&message)) return "Events{" + std::to_string(e->events.size()) + "}";
  return "frame";
}

uint64_t numberFromEnvironment(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 0) : fallback;
}

uint64_t seedFromEnvironment() {
  return numberFromEnvironment("RNOTIFY_ADVERSARY_SEED",
                               std::random_device{}() ^ (uint64_t{std::random_device{}()} << 32));
}

}  // namespace rnotify::adversary
