#include "server/transport.h"

#include <unistd.h>

namespace rnotify {

// Duplicates so that closing the session never closes fd 0/1 themselves:
// a stray later write to fd 1 must not land in some other file.
StdioTransport::StdioTransport(asio::io_context& io) : in_(io, ::dup(STDIN_FILENO)), out_(io, ::dup(STDOUT_FILENO)) {}

void StdioTransport::asyncReadSome(asio::mutable_buffer buffer, IoHandler handler) {
  in_.async_read_some(buffer, std::move(handler));
}

void StdioTransport::asyncWrite(asio::const_buffer buffer, IoHandler handler) {
  asio::async_write(out_, buffer, std::move(handler));
}

void StdioTransport::close() {
  std::error_code ignored;
  in_.close(ignored);
  out_.close(ignored);
}

}  // namespace rnotify
