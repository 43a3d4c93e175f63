#include "preload/fd_registry.h"

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "preload/shim_instance.h"

namespace rnotify::preload::registry {
namespace {

// One bit per descriptor number below kBitmapFds; numbers above that (rare)
// set gHighFds and are always looked up. Constant-initialized: no
// constructor runs, nothing is allocated until a descriptor is registered.
constexpr int kBitmapFds = 65536;
std::atomic<uint64_t> gBits[kBitmapFds / 64];
std::atomic<bool> gHighFds{false};

// A plain mutex, not a reader-writer lock: the fork handler locks it in the
// parent and unlocks it in the child, and glibc's rwlock remembers the
// writer's thread id, which the child does not have.
struct Table {
  std::mutex mutex;
  std::unordered_map<int, std::shared_ptr<ShimInstance>> byFd;
};

Table& table() {
  static Table* t = new Table();  // never destroyed, see the header
  return *t;
}

void setBit(int fd, bool on) {
  if (fd >= kBitmapFds) {
    if (on) gHighFds.store(true, std::memory_order_release);
    return;
  }
  uint64_t bit = uint64_t{1} << (fd % 64);
  if (on) {
    gBits[fd / 64].fetch_or(bit, std::memory_order_release);
  } else {
    gBits[fd / 64].fetch_and(~bit, std::memory_order_release);
  }
}

void prepareFork() { table().mutex.lock(); }
void parentAfterFork() { table().mutex.unlock(); }
void childAfterFork() {
  Table& t = table();
  for (auto& [fd, instance] : t.byFd) instance->becomeForkedCopy(fd);
  t.mutex.unlock();
}

}  // namespace

bool maybe(int fd) {
  if (fd < 0) return false;
  if (fd >= kBitmapFds) return gHighFds.load(std::memory_order_acquire);
  return (gBits[fd / 64].load(std::memory_order_acquire) >> (fd % 64)) & 1;
}

std::shared_ptr<ShimInstance> find(int fd) {
  Table& t = table();
  std::lock_guard lock(t.mutex);
  auto it = t.byFd.find(fd);
  return it == t.byFd.end() ? nullptr : it->second;
}

void add(int fd, std::shared_ptr<ShimInstance> instance) {
  Table& t = table();
  std::shared_ptr<ShimInstance> replaced;  // released after the lock
  std::lock_guard lock(t.mutex);
  auto& slot = t.byFd[fd];
  replaced = std::move(slot);
  slot = std::move(instance);
  setBit(fd, true);
}

std::shared_ptr<ShimInstance> remove(int fd) {
  Table& t = table();
  std::lock_guard lock(t.mutex);
  auto it = t.byFd.find(fd);
  if (it == t.byFd.end()) return nullptr;
  std::shared_ptr<ShimInstance> instance = std::move(it->second);
  t.byFd.erase(it);
  setBit(fd, false);
  return instance;
}

std::vector<std::shared_ptr<ShimInstance>> removeRange(unsigned first, unsigned last) {
  Table& t = table();
  std::vector<std::shared_ptr<ShimInstance>> removed;
  std::lock_guard lock(t.mutex);
  for (auto it = t.byFd.begin(); it != t.byFd.end();) {
    unsigned fd = static_cast<unsigned>(it->first);
    if (fd >= first && fd <= last) {
      removed.push_back(std::move(it->second));
      setBit(it->first, false);
      it = t.byFd.erase(it);
    } else {
      ++it;
    }
  }
  return removed;
}

void installForkHandlers() {
  static std::once_flag once;
  std::call_once(once, [] { ::pthread_atfork(prepareFork, parentAfterFork, childAfterFork); });
}

}  // namespace rnotify::preload::registry
