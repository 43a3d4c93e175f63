// writeNoSignal: write() that never raises SIGPIPE. An application using
// librnotify must not die because rnotifyd, or the ssh of an SFTP session,
// went away: the write fails with EPIPE instead.
#pragma once

#include <sys/types.h>

#include <cstddef>

namespace rnotify {

ssize_t writeNoSignal(int fd, const void* data, size_t size);

}  // namespace rnotify
