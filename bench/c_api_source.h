// CApiSource: the full product path as an application sees it. rnotify_init +
// rnotify_add_watch on a directory inside an sshfs mount; the library finds the
// mount's ssh settings, starts `ssh ... rnotifyd --stdio` itself (the agent
// command comes from RNOTIFY_AGENT) and merges the server's events, marked
// IN_REMOTE, into rnotify_next(). Only IN_REMOTE creates count.
#pragma once

#include "event_source.h"
#include "rnotify/rnotify.h"

namespace rnotify::bench {

class CApiSource final : public EventSource {
 public:
  // Watches watchPath (inside the mount) for IN_CREATE; changeDir is the same
  // directory on the server side. Throws std::runtime_error with
  // rnotify_last_error() on failure.
  CApiSource(std::string name, const std::string& watchPath, std::string changeDir);
  ~CApiSource() override;
  CApiSource(const CApiSource&) = delete;
  CApiSource& operator=(const CApiSource&) = delete;

  const std::string& name() const override { return name_; }
  const std::string& description() const override { return description_; }
  const std::string& changeDir() const override { return changeDir_; }
  std::optional<std::string> nextCreate(int timeoutMs) override;

 private:
  std::string name_;
  std::string description_;
  std::string changeDir_;
  rnotify_t* handle_ = nullptr;
};

}  // namespace rnotify::bench
