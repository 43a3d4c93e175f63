#include "poll/sftp_session.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>

#include "common/write_no_signal.h"

namespace rnotify {

std::vector<std::string> SftpSession::argv(const SshTarget& target) {
  std::vector<std::string> argv{target.sshProgram};
  argv.insert(argv.end(), target.sshOptions.begin(), target.sshOptions.end());
  // BatchMode: this runs inside an application and must never prompt.
  for (const char* option : {"-oBatchMode=yes", "-oClearAllForwardings=yes", "-x", "-a", "-s", "--"}) {
    argv.emplace_back(option);
  }
  argv.push_back(target.destination);
  argv.emplace_back("sftp");
  return argv;
}

Result<std::unique_ptr<SftpSession>> SftpSession::start(const SshTarget& target, int epollFd) {
  auto process = AgentProcess::spawn(argv(target));
  if (!process) return process.error();
  std::unique_ptr<SftpSession> session(new SftpSession());
  session->process_ = std::move(*process);
  session->destination_ = target.destination;
  session->epoll_ = epollFd;
  // Requests are written as the pipe takes them: never a blocking write.
  ::fcntl(session->process_.input(), F_SETFL, O_NONBLOCK);
  epoll_event ev{};
  ev.events = EPOLLIN;
  if (::epoll_ctl(epollFd, EPOLL_CTL_ADD, session->process_.output(), &ev) != 0) {
    return lastError("epoll_ctl");
  }
  session->out_ = sftp::encodeInit();
  if (Status flushed = session->flush(); !flushed) return flushed.error();
  return session;
}

SftpSession::~SftpSession() {
  if (process_.output() >= 0) ::epoll_ctl(epoll_, EPOLL_CTL_DEL, process_.output(), nullptr);
  if (writesWatched_) ::epoll_ctl(epoll_, EPOLL_CTL_DEL, process_.input(), nullptr);
  process_.kill();
}

uint32_t SftpSession::request(sftp::Type type, std::string_view argument) {
  const uint32_t id = nextId_++;
  out_ += sftp::encodeRequest(type, id, argument);
  ++requests_;
  return id;
}

Error SftpSession::fail(Error error) {
  process_.closeInput();
  const int code = process_.reap(0);
  std::string said = process_.stderrText();
  process_.kill();
  while (!said.empty() && (said.back() == '\n' || said.back() == '\r')) said.pop_back();
  if (!said.empty()) error.message += " (ssh: " + said + ")";
  if (code >= 0 && said.empty()) error.message += " (ssh exited with status " + std::to_string(code) + ")";
  return error;
}

Status SftpSession::watchWrites(bool on) {
  if (on == writesWatched_) return {};
  epoll_event ev{};
  ev.events = EPOLLOUT;
  if (::epoll_ctl(epoll_, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, process_.input(), &ev) != 0) {
    return lastError("epoll_ctl");
  }
  writesWatched_ = on;
  return {};
}

Status SftpSession::flush() {
  size_t done = 0;
  while (done < out_.size()) {
    ssize_t n = writeNoSignal(process_.input(), out_.data() + done, out_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) break;  // the pipe is full: when it is writable again
    if (n < 0) return fail(Error::fromErrno(errno, "SFTP session to " + destination_));
    done += static_cast<size_t>(n);
  }
  out_.erase(0, done);
  return watchWrites(!out_.empty());
}

Result<std::vector<sftp::Reply>> SftpSession::exchange() {
  if (Status flushed = flush(); !flushed) return flushed.error();
  std::vector<sftp::Reply> replies;
  // One read per call, at most 64 KiB (a few hundred entries): the
  // descriptor stays readable for the rest, and no call does much.
  char chunk[65536];
  ssize_t n;
  do {
    n = ::read(process_.output(), chunk, sizeof chunk);
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno != EAGAIN) return fail(Error::fromErrno(errno, "SFTP session to " + destination_));
  if (n == 0) return fail(Error{ECONNRESET, "the SFTP session to " + destination_ + " ended"});
  if (n > 0) in_.append(chunk, static_cast<size_t>(n));
  size_t at = 0;  // whole packets are taken, the rest kept for the next read
  while (in_.size() - at >= 4) {
    std::string_view rest = std::string_view(in_).substr(at);
    auto length = sftp::packetLength(rest);
    if (!length) return fail(Error{length.error().code, destination_ + ": " + length.error().message});
    if (rest.size() < 4 + *length) break;
    auto reply = sftp::decodeReply(rest.substr(4, *length));
    at += 4 + *length;
    if (!reply) return fail(Error{reply.error().code, destination_ + ": " + reply.error().message});
    if (ready_) {
      replies.push_back(std::move(*reply));
    } else if (reply->type != sftp::kVersion || reply->version < 3) {
      return fail(Error{EPROTO, "the SFTP server of " + destination_ + " does not speak SFTP version 3"});
    } else {
      ready_ = true;
    }
  }
  in_.erase(0, at);
  return replies;
}

}  // namespace rnotify
