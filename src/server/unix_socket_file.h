// UnixSocketFile: the file a unix-socket listener binds, claimed so that no
// two daemons fight over it.
//
// Binding refuses a path where another process answers (a second rnotifyd
// must not silently take the first one's clients away), replaces a socket
// file nobody answers on (left by a daemon that died), and leaves any other
// kind of file alone. At the end the file is removed only if it is still the
// one this process created (same device and inode): a daemon that was
// started by mistake, or whose file was replaced meanwhile, must not remove
// the socket another daemon serves.
#pragma once

#include <sys/types.h>

#include <string>

#include "common/result.h"
#include "common/unique_fd.h"

namespace rnotify {

class UnixSocketFile {
 public:
  // Binds the unbound AF_UNIX stream socket `socketFd` to path and makes it
  // listen. EADDRINUSE if a process answers there, EEXIST if path is not a
  // socket.
  static Result<UnixSocketFile> bindAndListen(int socketFd, const std::string& path, int backlog);

  UnixSocketFile() = default;
  UnixSocketFile(UnixSocketFile&&) = default;
  UnixSocketFile& operator=(UnixSocketFile&& other) noexcept {
    if (this != &other) {
      remove();
      dir_ = std::move(other.dir_);
      name_ = std::move(other.name_);
      dev_ = other.dev_;
      ino_ = other.ino_;
    }
    return *this;
  }
  ~UnixSocketFile() { remove(); }

  // Removes the file if it is still ours; later calls do nothing.
  void remove();

 private:
  UniqueFd dir_;      // the directory the file was made in: removal does not follow a renamed path
  std::string name_;  // within dir_
  dev_t dev_ = 0;
  ino_t ino_ = 0;
};

}  // namespace rnotify
