#include "fuse/reflection_gate.h"

#include <sys/stat.h>

namespace rnotify::fuse {

void ReflectionGate::expect(const std::string& dir, const std::string& name, Expect what, mode_t type) {
  std::lock_guard lock(mutex_);
  entries_.push_back({dir, name, what, type});
  active_.store(true, std::memory_order_release);
}

void ReflectionGate::clear() {
  std::lock_guard lock(mutex_);
  entries_.clear();
  active_.store(false, std::memory_order_release);
}

ReflectionGate::Expect ReflectionGate::expected(const std::string& dir, const std::string& name, mode_t* type) const {
  std::lock_guard lock(mutex_);
  const std::string path = dir.empty() ? name : dir + "/" + name;
  Expect found = Expect::kNone;
  for (const Entry& e : entries_) {
    if (e.dir == dir && e.name == name) {
      *type = e.type;
      return e.what;
    }
    // A directory on the way to an announced entry: the server may have
    // removed or renamed it since, and the walk must still get through.
    if (e.dir == path || e.dir.compare(0, path.size() + 1, path + "/") == 0) {
      *type = S_IFDIR;
      found = Expect::kGhost;
    }
  }
  return found;
}

}  // namespace rnotify::fuse
