// What the kernel-backend tests share: a temporary directory, a Watcher of
// it whose events are collected, and the helpers to subscribe, drain until a
// condition holds (at most 5 s), put a barrier in the queue and count what
// came. Used by watcher_contract_test.cc (every backend) and the tests of
// what only one backend does (inotify_watcher_test.cc,
// fanotify_watcher_test.cc).
#pragma once

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "watch/watcher.h"

namespace rnotify::watchtest {

struct Seen {
  SubscriptionId sub = 0;
  uint32_t mask = 0;
  uint32_t cookie = 0;
  std::string dir;
  std::string name;
  int pid = 0;
};

class Collector : public EventSink {
 public:
  void onEvent(SubscriptionId sub, uint32_t mask, uint32_t cookie, std::string_view dir, std::string_view name,
               int pid) override {
    events.push_back({sub, mask, cookie, std::string(dir), std::string(name), pid});
  }
  std::vector<Seen> events;
};

class WatcherFixture : public ::testing::Test {
 protected:
  // Makes root_, /tmp/<prefix>XXXXXX; the test then hands its watcher to use().
  void makeRoot(const std::string& prefix) {
    std::string pattern = "/tmp/" + prefix + "XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    root_ = pattern;
  }
  bool use(std::unique_ptr<Watcher> watcher) {
    watcher_ = std::move(watcher);
    barrierSub_ = 0;
    return watcher_ != nullptr;
  }
  void TearDown() override {
    watcher_.reset();
    if (!root_.empty()) std::filesystem::remove_all(root_);
  }

  SubscriptionId subscribe(const std::string& path, bool recursive, uint32_t mask = IN_ALL_EVENTS) {
    SubscribeOptions options;
    options.mask = mask & ~(IN_OPEN | IN_ACCESS | IN_CLOSE_NOWRITE);
    options.recursive = recursive;
    auto id = watcher_->subscribe(path, options);
    EXPECT_TRUE(id.ok()) << id.error().message;
    return id.ok() ? *id : 0;
  }

  // Drains until pred holds, at most 5 s; on failure prints what came.
  void drainUntil(const std::function<bool()>& pred, const std::string& what) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) {
        FAIL() << "timed out waiting for " << what << "; events seen:\n" << seen();
      }
      struct pollfd p = {watcher_->fd(), POLLIN, 0};
      ::poll(&p, 1, 100);
      watcher_->drain();
    }
  }
  // Drains until the kernel queue is quiet for a moment (inotify: a watch of
  // its own directories sees nothing else).
  void drainQuiet() {
    for (;;) {
      struct pollfd p = {watcher_->fd(), POLLIN, 0};
      if (::poll(&p, 1, 200) <= 0) break;
      watcher_->drain();
    }
    watcher_->drain();
  }
  // Every event of what happened before this call has been handed to the
  // sink: a file created now comes after them in the backend's one queue.
  void barrier() {
    if (barrierSub_ == 0) {
      std::filesystem::create_directory(root_ + "/.barrier");
      barrierSub_ = subscribe(root_ + "/.barrier", false, IN_CREATE);
    }
    std::string name = "b" + std::to_string(++barriers_);
    touch(root_ + "/.barrier/" + name);
    drainUntil([&] { return count(barrierSub_, IN_CREATE, "", name) == 1; }, "the barrier");
  }

  std::string seen() const {
    std::string text;
    for (auto& e : sink_.events) text += describe(e) + "\n";
    return text;
  }
  static std::string describe(const Seen& e) {
    char mask[16];
    std::snprintf(mask, sizeof mask, "%08x", e.mask);
    return std::to_string(e.sub) + " " + e.dir + "|" + e.name + " " + mask + " cookie " + std::to_string(e.cookie) +
           " pid " + std::to_string(e.pid);
  }
  static bool matches(const Seen& e, SubscriptionId sub, uint32_t mask, const std::string& dir,
                      const std::string& name) {
    return e.sub == sub && (e.mask & mask) == mask && e.dir == dir && e.name == name;
  }
  size_t count(SubscriptionId sub, uint32_t mask, const std::string& dir, const std::string& name) const {
    size_t n = 0;
    for (auto& e : sink_.events) n += matches(e, sub, mask, dir, name);
    return n;
  }
  // The first match, or kNone (mask 0, cookie 0), so that a check after a
  // timed-out wait fails instead of dereferencing null.
  const Seen* find(SubscriptionId sub, uint32_t mask, const std::string& dir, const std::string& name) const {
    for (auto& e : sink_.events) {
      if (matches(e, sub, mask, dir, name)) return &e;
    }
    return &kNone;
  }
  static bool found(const Seen* e) { return e != &kNone; }
  size_t indexOf(SubscriptionId sub, uint32_t mask, const std::string& dir, const std::string& name) const {
    for (size_t i = 0; i < sink_.events.size(); ++i) {
      if (matches(sink_.events[i], sub, mask, dir, name)) return i;
    }
    return SIZE_MAX;
  }
  static void touch(const std::string& path) { std::ofstream(path).put('x'); }

  static inline const Seen kNone{};
  std::string root_;
  Collector sink_;
  std::unique_ptr<Watcher> watcher_;
  SubscriptionId barrierSub_ = 0;
  int barriers_ = 0;
};

}  // namespace rnotify::watchtest
