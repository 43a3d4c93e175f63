// Netns and VethLink; see netns.h.
#include "netns.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <random>
#include <stdexcept>

#include "process.h"

namespace rnotify::testbed {
namespace {

constexpr const char* kPrefix = "rnt-";

std::string randomHex(int digits) {
  static std::mt19937_64 rng{std::random_device{}()};
  std::string out;
  for (int i = 0; i < digits; ++i) out += "0123456789abcdef"[rng() % 16];
  return out;
}

bool sameNetns(const std::string& nsPath, int pid) {
  struct stat a {
  }, b{};
  if (::stat(nsPath.c_str(), &a) != 0) return false;
  std::string self = "/proc/" + std::to_string(pid) + "/ns/net";
  if (::stat(self.c_str(), &b) != 0) return false;
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

std::vector<int> pidsIn(const std::string& nsPath) {
  std::vector<int> out;
  if (DIR* d = ::opendir("/proc")) {
    while (dirent* e = ::readdir(d)) {
      char* end = nullptr;
      long pid = std::strtol(e->d_name, &end, 10);
      if (*end == '\0' && pid > 0 && sameNetns(nsPath, static_cast<int>(pid))) out.push_back(static_cast<int>(pid));
    }
    ::closedir(d);
  }
  return out;
}

void destroyNamespace(const std::string& name) {
  std::string path = "/run/netns/" + name;
  for (int pid : pidsIn(path)) ::kill(pid, SIGKILL);
  runCommand({"ip", "netns", "delete", name}, Deadline::in(std::chrono::seconds(10)));
}

// "rnt-1234-abcd" whose test process 1234 is gone: left by a crashed run.
void removeStaleNamespaces() {
  DIR* d = ::opendir("/run/netns");
  if (d == nullptr) return;
  std::vector<std::string> stale;
  while (dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n.rfind(kPrefix, 0) != 0) continue;
    int pid = std::atoi(n.c_str() + 4);
    if (pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH) stale.push_back(n);
  }
  ::closedir(d);
  for (const auto& n : stale) destroyNamespace(n);
}

}  // namespace

bool Netns::available() {
  static const bool ok = [] {
    if (::geteuid() != 0) return false;
    try {
      Netns probe;
      return true;
    } catch (...) {
      return false;
    }
  }();
  return ok;
}

Netns::Netns() {
  removeStaleNamespaces();
  name_ = std::string(kPrefix) + std::to_string(::getpid()) + "-" + randomHex(6);
  auto deadline = Deadline::in(std::chrono::seconds(10));
  runChecked({"ip", "netns", "add", name_}, deadline);
  try {
    runChecked({"ip", "link", "set", "lo", "up"}, deadline, this);
  } catch (...) {
    destroyNamespace(name_);
    throw;
  }
}

Netns::~Netns() {
  try {
    destroyNamespace(name_);
  } catch (...) {
  }
}

std::vector<std::string> Netns::wrap(const std::vector<std::string>& argv) const {
  std::vector<std::string> out{"nsenter", "--net=" + path(), "--"};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

std::vector<int> Netns::pids() const { return pidsIn(path()); }

VethLink::VethLink(const Netns& a, const Netns* b, int subnet) {
  if (subnet < 0 || subnet > 255) throw std::invalid_argument("VethLink: subnet must be 0..255");
  std::string base = "10.213." + std::to_string(subnet) + ".";
  addressA_ = base + "1";
  addressB_ = base + "2";
  // Interface names are limited to 15 characters and must be unique where
  // they are created (the host, for a host end).
  std::string tag = "rnt" + randomHex(8);
  std::string endA = tag + "a", endB = tag + "b";
  auto deadline = Deadline::in(std::chrono::seconds(10));
  std::vector<std::string> add{"ip", "link", "add", endA, "netns", a.name(), "type", "veth", "peer", "name", endB};
  if (b != nullptr) {
    add.push_back("netns");
    add.push_back(b->name());
  } else {
    hostEnd_ = endB;
  }
  runChecked(add, deadline);
  try {
    runChecked({"ip", "addr", "add", addressA_ + "/30", "dev", endA}, deadline, &a);
    runChecked({"ip", "link", "set", endA, "up"}, deadline, &a);
    runChecked({"ip", "addr", "add", addressB_ + "/30", "dev", endB}, deadline, b);
    runChecked({"ip", "link", "set", endB, "up"}, deadline, b);
  } catch (...) {
    if (!hostEnd_.empty()) runCommand({"ip", "link", "delete", hostEnd_}, Deadline::in(std::chrono::seconds(5)));
    throw;
  }
}

VethLink::~VethLink() {
  try {
    if (!hostEnd_.empty()) runCommand({"ip", "link", "delete", hostEnd_}, Deadline::in(std::chrono::seconds(5)));
  } catch (...) {
  }
}

}  // namespace rnotify::testbed
