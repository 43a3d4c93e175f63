// The client core's connections to rnotifyd (client.h), opened: a watch's
// first (waited for, or with RNOTIFY_NONBLOCK made in the epoll set), and
// every reconnection, in next()'s epoll set with backoff; keepalive.
#include <poll.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <random>
#include <utility>

#include "client/client.h"
#include "client/client_internal.h"
#include "common/log.h"

namespace rnotify {

using namespace client_detail;

void Client::armKeepalive() {
  if (keepaliveArmed_ || !config_) return;
  // Twice per interval: a silence is noticed within 3.5 intervals.
  const long ms = std::max(config_->keepaliveMs / 2, 50);
  itimerspec spec{};
  spec.it_interval.tv_sec = ms / 1000;
  spec.it_interval.tv_nsec = (ms % 1000) * 1000000;
  spec.it_value = spec.it_interval;
  if (::timerfd_settime(keepalive_.get(), 0, &spec, nullptr) == 0) keepaliveArmed_ = true;
}

void Client::keepConnectionsAlive() {
  const std::chrono::milliseconds interval(config_ ? config_->keepaliveMs : 2000);
  std::vector<Connection*> silent;
  for (auto& [key, connection] : connections_) {
    if (lost_.count(connection.get())) continue;  // handled; waiting to be replaced
    if (!connection->keepAlive(interval)) silent.push_back(connection.get());
  }
  for (Connection* connection : silent) connectionLost(*connection);
  // No connection left to keep: no more wake-ups until one is made.
  bool live = false;
  for (const auto& [key, connection] : connections_) live |= !lost_.count(connection.get());
  if (!live && keepaliveArmed_) {
    itimerspec off{};
    ::timerfd_settime(keepalive_.get(), 0, &off, nullptr);
    keepaliveArmed_ = false;
  }
}

std::chrono::milliseconds Client::backoff(int attempt) {
  // 250 ms doubling to a cap, each with +-20 % jitter so that many clients
  // cut off together do not come back together.
  static thread_local std::minstd_rand random(std::random_device{}());
  const int capMs = timing_.reconnectMaxMs;
  double ms = std::min<double>(capMs, 250.0 * std::pow(2.0, std::min(attempt, 20)));
  std::uniform_real_distribution<double> jitter(0.8, 1.2);
  return std::chrono::milliseconds(static_cast<int64_t>(ms * jitter(random)));
}

void Client::retryConnections() {
  auto now = std::chrono::steady_clock::now();
  std::vector<std::string> due;
  for (const auto& [key, retry] : retries_) {
    if (retry.due <= now && !openings_.count(key)) due.push_back(key);
  }
  for (const std::string& key : due) {
    // A watch added meanwhile connected again (Client::connect): its
    // connection serves the waiting watches too.
    if (auto it = connections_.find(key);
        it != connections_.end() && it->second->alive() && !lost_.count(it->second.get())) {
      retries_.erase(key);
      restoreWatches(key, it->second.get());
      continue;
    }
    retries_.at(key).due = std::chrono::steady_clock::time_point::max();  // while the attempt lasts
    auto started = openers_.at(key)();
    if (!started) {
      retryFailed(key, started.error());
      continue;
    }
    Opening& opening = openings_[key];
    opening.connection = std::move(*started);
    opening.timeoutMs = timing_.connectTimeoutMs;
    opening.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(opening.timeoutMs);
    epoll_event ev{};
    ev.events = opening.connection->wanted();
    ev.data.ptr = opening.connection.get();
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, opening.connection->pollFd(), &ev);
    advanceOpening(key);  // a unix socket may be connected already
  }
}

const std::string* Client::openingKey(const Connection* connection) const {
  for (const auto& [key, opening] : openings_) {
    if (opening.connection.get() == connection) return &key;
  }
  return nullptr;
}

// By value: key may be the opening's own, which goes.
void Client::advanceOpening(std::string key) {  // NOLINT(performance-unnecessary-value-param)
  auto it = openings_.find(key);
  if (it == openings_.end()) return;
  Connection& connection = *it->second.connection;
  const Connection::Phase phase = connection.advance();
  if (phase != Connection::Phase::kReady && phase != Connection::Phase::kFailed) {
    epoll_event ev{};
    ev.events = connection.wanted();
    ev.data.ptr = &connection;
    // A failed connect moves on to the endpoint's next address, on a new
    // socket (the old one left the set when it was closed).
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, connection.pollFd(), &ev) != 0 && errno == ENOENT) {
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, connection.pollFd(), &ev);
    }
    return;
  }
  std::unique_ptr<Connection> opened = std::move(it->second.connection);
  openings_.erase(it);
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, opened->pollFd(), nullptr);
  if (phase == Connection::Phase::kFailed) {
    retryFailed(key, opened->failure());
    return;
  }
  forgetConnection(key);
  // Its session is made next, in the same epoll set (sessionMade).
  if (auto adopted = adopt(key, std::move(opened), /*wait=*/false); !adopted) retryFailed(key, adopted.error());
}

void Client::expireOpenings() {
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::string> late;
  for (const auto& [key, opening] : openings_) {
    if (opening.deadline <= now) late.push_back(key);
  }
  for (const std::string& key : late) {
    auto it = openings_.find(key);
    std::unique_ptr<Connection> connection = std::move(it->second.connection);
    const Error why = connection->timeoutError(it->second.timeoutMs);
    openings_.erase(it);
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, connection->pollFd(), nullptr);
    connection->abandon();  // an agent that never answered is killed, not waited for
    retryFailed(key, why);
  }
}

void Client::retryFailed(const std::string& key, const Error& why) {
  Retry& retry = retries_[key];
  retry.code = why.code;
  const bool first = firstUnderWay(key);
  retry.firstAttempt = false;
  ++retry.attempt;
  auto wait = backoff(retry.attempt);
  log::info("{} the server ({}); next try in {} ms", first ? "cannot reach" : "still cannot reach", why.message,
            wait.count());
  retry.due = std::chrono::steady_clock::now() + wait;
  retry.why = why.message;
  if (first) firstAttemptFailed(key, why);
  armReleaseTimer();
}

bool Client::firstUnderWay(const std::string& key) const {
  if (auto retry = retries_.find(key); retry != retries_.end() && retry->second.firstAttempt) return true;
  for (const auto& [wd, watch] : watches_) {
    if (watch.attaching && watch.connectionKey == key) return true;
  }
  return false;
}

void Client::firstAttemptFailed(const std::string& key, const Error& why) {
  // As when the first connection of a watch that waited for it fails
  // (chooseRemote): the mount's next source, while the server is tried
  // again in the background. Its first round, the baseline, is taken before
  // its source says so (as store() takes it before addWatch returns).
  std::vector<int> waiting;
  for (const auto& [wd, watch] : watches_) {
    if (watch.attaching && watch.connectionKey == key) waiting.push_back(wd);
  }
  for (int wd : waiting) {
    auto it = watches_.find(wd);
    if (it == watches_.end()) continue;
    it->second.attaching = false;
    startFallback(it->second, env_->resolve(it->second.localRoot), why.message);
    if (it->second.fallback && it->second.fallback->scans()) runSource(wd);
  }
}

void Client::forgetConnection(const std::string& key) {
  auto it = connections_.find(key);
  if (it == connections_.end()) return;
  // Found dead by a write (nothing has read it since): the watches it
  // served are told and wait for the server again before it goes.
  connectionLost(*it->second);
  lost_.erase(it->second.get());
  declared_.erase(it->second.get());
  jobs_.erase(it->second.get());
  resumed_.erase(it->second.get());
  connections_.erase(it);
}

Result<Connection*> Client::connect(const std::string& key, const Opener& open, bool wait) {
  if (auto it = connections_.find(key); it != connections_.end() && it->second->alive()) return it->second.get();
  forgetConnection(key);
  openers_[key] = open;
  if (!wait) {
    // The attempt runs in next()'s epoll set, as reconnections do; the
    // caller marks its watch attaching.
    Retry& retry = retries_[key];
    retry.firstAttempt = true;
    retry.due = std::chrono::steady_clock::now();
    retry.why = "connecting";
    armReleaseTimer();
    return Error{EINPROGRESS, "connecting"};
  }
  // A unix listener whose queue is full is tried again until the deadline.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timing_.connectTimeoutMs);
  auto opened = open();
  while (!opened && opened.error().code == EAGAIN && std::chrono::steady_clock::now() < deadline) {
    ::poll(nullptr, 0, 10);
    opened = open();
  }
  if (!opened) return opened.error();
  if (Status ready = (*opened)->finish(timing_.connectTimeoutMs); !ready) return ready.error();
  return adopt(key, std::move(*opened), /*wait=*/true);
}

}  // namespace rnotify
