// ConnectionSource; see connection_source.h.
#include "connection_source.h"

#include <poll.h>
#include <sys/inotify.h>

#include <cerrno>
#include <stdexcept>

namespace rnotify::bench {

ConnectionSource::ConnectionSource(std::string name, std::unique_ptr<Connection> connection,
                                   const std::string& serverPath, std::string changeDir)
    : name_(std::move(name)), changeDir_(std::move(changeDir)), connection_(std::move(connection)) {
  description_ = "rnotify::Connection to " + connection_->description() + " (" + connection_->welcome().serverName +
                 "), watching " + serverPath;
  connection_->setEventsHandler([this](Connection&, proto::Events& events) {
    for (Event& event : events.events) {
      if (event.mask & IN_Q_OVERFLOW) ++stats_.overflows;
      if ((event.mask & IN_CREATE) && event.dir.empty()) queue_.push_back(std::move(event.name));
    }
  });
  proto::Watch watch;
  watch.mask = IN_CREATE;
  watch.path = serverPath;
  auto reply = connection_->request(watch, 10000);
  if (!reply) throw std::runtime_error(name_ + ": watch request failed: " + reply.error().message);
  if (reply->status != 0) throw std::runtime_error(name_ + ": server refused the watch: " + reply->message);
}

std::optional<std::string> ConnectionSource::nextCreate(int timeoutMs) {
  while (queue_.empty()) {
    struct pollfd p = {connection_->readFd(), POLLIN, 0};
    int n = ::poll(&p, 1, timeoutMs);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::nullopt;
    if (!connection_->pump()) throw std::runtime_error(name_ + ": " + connection_->failure().message);
  }
  std::string name = std::move(queue_.front());
  queue_.pop_front();
  return name;
}

}  // namespace rnotify::bench
