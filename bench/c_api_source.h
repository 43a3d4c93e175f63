// CApiSource: the full product path as an application sees it. rnotify_init +
// rnotify_add_watch on a directory inside an sshfs mount; the library finds the
// mount's ssh settings, starts `ssh ... rnotifyd --stdio` itself (the agent
// command comes from RNOTIFY_AGENT) and merges the server's events, marked
// IN_REMOTE, into rnotify_next().
//
// Two uses: changes made on the server (only IN_REMOTE creates count: the
// local kernel never sees them anyway), and changes made through this very
// mount (every IN_CREATE counts, local or remote), with RNOTIFY_DEDUP chosen
// per source to compare the de-duplication strategies.
#pragma once

#include <optional>
#include <string>
#include <unordered_set>

#include "event_source.h"
#include "rnotify/rnotify.h"

namespace rnotify::bench {

// Declared outside CApiSource: GCC cannot use a nested class with default
// member initializers as a default argument of the enclosing class.
struct CApiSourceOptions {
  // RNOTIFY_DEDUP while this handle is created ("off", "echo", ...);
  // nullopt leaves the environment as it is.
  std::optional<std::string> dedup;
  // Count creates without IN_REMOTE too (changes made through the mount).
  bool localCreatesCount = false;
};

class CApiSource final : public EventSource {
 public:
  // Watches watchPath (inside the mount) for IN_CREATE; changeDir is where
  // the runner creates the files (the server side, or the mount itself).
  // Throws std::runtime_error with rnotify_last_error() on failure.
  CApiSource(std::string name, const std::string& watchPath, std::string changeDir, CApiSourceOptions options = {});
  ~CApiSource() override;
  CApiSource(const CApiSource&) = delete;
  CApiSource& operator=(const CApiSource&) = delete;

  const std::string& name() const override { return name_; }
  const std::string& description() const override { return description_; }
  const std::string& changeDir() const override { return changeDir_; }
  std::optional<std::string> nextCreate(int timeoutMs) override;

  // rnotify_watch_source() of the watch: the connection and the
  // de-duplication strategy in force.
  const std::string& watchSource() const { return watchSource_; }
  // The strategy part of watchSource() ("origin attribution", "state
  // comparison", "echo matching", "no de-duplication"), or "" if none.
  const std::string& strategy() const { return strategy_; }
  // The strategy RNOTIFY_DEDUP asked for, as watchSource() names it ("" if
  // no mode was set); auto asks for the best one, origin attribution.
  static std::string expectedStrategy(const std::string& dedup);
  // With localCreatesCount: of the names delivered, how many were delivered
  // first by this host's kernel and how many by the server (IN_REMOTE).
  size_t firstLocal() const { return firstLocal_; }
  size_t firstRemote() const { return firstRemote_; }

 private:
  std::string name_;
  std::string description_;
  std::string changeDir_;
  CApiSourceOptions options_;
  std::string watchSource_;
  std::string strategy_;
  std::unordered_set<std::string> delivered_;
  size_t firstLocal_ = 0;
  size_t firstRemote_ = 0;
  rnotify_t* handle_ = nullptr;
};

}  // namespace rnotify::bench
