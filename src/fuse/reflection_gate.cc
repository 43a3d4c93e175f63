#include "fuse/reflection_gate.h"

namespace rnotify::fuse {

void ReflectionGate::expect(const std::string& dir, const std::string& name, Expect what, mode_t type) {
  std::lock_guard lock(mutex_);
  entries_.push_back({dir, name, what, type});
}

void ReflectionGate::clear() {
  std::lock_guard lock(mutex_);
  entries_.clear();
}

ReflectionGate::Expect ReflectionGate::expected(const std::string& dir, const std::string& name, mode_t* type) const {
  std::lock_guard lock(mutex_);
  for (const Entry& e : entries_) {
    if (e.dir == dir && e.name == name) {
      *type = e.type;
      return e.what;
    }
  }
  return Expect::kNone;
}

}  // namespace rnotify::fuse
