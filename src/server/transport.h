// Transport: the byte stream a Session talks over, whatever carries it (the
// ssh agent's stdin/stdout, a unix socket, a TCP socket; TLS later). Sessions
// see only this, so adding a transport touches no protocol code.
#pragma once

#include <asio.hpp>
#include <functional>
#include <memory>
#include <string>

namespace rnotify {

using IoHandler = std::function<void(std::error_code, size_t)>;

class Transport {
 public:
  virtual ~Transport() = default;
  virtual void asyncReadSome(asio::mutable_buffer buffer, IoHandler handler) = 0;
  virtual void asyncWrite(asio::const_buffer buffer, IoHandler handler) = 0;
  virtual void close() = 0;
  virtual std::string describe() const = 0;  // for logs: "stdio", "unix:/run/x.sock uid 1000", "tcp 127.0.0.1:4242"
};

// Any Asio stream socket (local or TCP).
template <typename Socket>
class SocketTransport final : public Transport {
 public:
  SocketTransport(Socket socket, std::string description)
      : socket_(std::move(socket)), description_(std::move(description)) {}
  void asyncReadSome(asio::mutable_buffer buffer, IoHandler handler) override {
    socket_.async_read_some(buffer, std::move(handler));
  }
  void asyncWrite(asio::const_buffer buffer, IoHandler handler) override {
    asio::async_write(socket_, buffer, std::move(handler));
  }
  void close() override {
    std::error_code ignored;
    socket_.shutdown(Socket::shutdown_both, ignored);
    socket_.close(ignored);
  }
  std::string describe() const override { return description_; }

 private:
  Socket socket_;
  std::string description_;
};

// stdin/stdout of the agent started by ssh (like sftp-server).
class StdioTransport final : public Transport {
 public:
  explicit StdioTransport(asio::io_context& io);
  void asyncReadSome(asio::mutable_buffer buffer, IoHandler handler) override;
  void asyncWrite(asio::const_buffer buffer, IoHandler handler) override;
  void close() override;
  std::string describe() const override { return "stdio"; }

 private:
  asio::posix::stream_descriptor in_;
  asio::posix::stream_descriptor out_;
};

}  // namespace rnotify
