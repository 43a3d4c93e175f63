// Handlers for contents: open, read, write, flush, release, fsync, the
// directory calls, statfs, access and extended attributes.
#include <dirent.h>
#include <fcntl.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <vector>

#include "fuse/passthrough_internal.h"

namespace rnotify::fuse {
namespace {

void opInit(void* /*userdata*/, fuse_conn_info* conn) {
  // The page cache of a file is dropped at every open (no keep_cache) and on
  // every remote change (notify_inval_inode): the source changes behind our
  // back. Writeback caching would hide such changes; it stays off.
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  if (conn->capable & FUSE_CAP_SPLICE_READ) conn->want |= FUSE_CAP_SPLICE_READ;
  if (conn->capable & FUSE_CAP_SPLICE_WRITE) conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
}

void opOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  // An own open is a reflected write-close: nothing is opened on SOURCE, so
  // the server sees no open and no close of ours.
  if (isOwn(req)) {
    fi->fh = kNoFile;
    fuse_reply_open(req, fi);
    return;
  }
  int fd = viewOf(req).table->fdOf(ino);
  if (fd < 0) {
    fuse_reply_err(req, ESTALE);
    return;
  }
  int flags = (fi->flags & ~(O_CREAT | O_EXCL | O_NOCTTY | O_NOFOLLOW)) | O_CLOEXEC;
  int opened = ::open(procPath(fd).c_str(), flags);
  if (opened < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  fi->fh = static_cast<uint64_t>(opened);
  fi->keep_cache = 0;
  if (fuse_reply_open(req, fi) != 0) ::close(opened);
}

void opRead(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t offset, fuse_file_info* fi) {
  if (fi->fh == kNoFile) {
    fuse_reply_err(req, EBADF);
    return;
  }
  fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
  buf.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  buf.buf[0].fd = static_cast<int>(fi->fh);
  buf.buf[0].pos = offset;
  fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
}

void opWriteBuf(fuse_req_t req, fuse_ino_t /*ino*/, fuse_bufvec* in, off_t offset, fuse_file_info* fi) {
  if (fi->fh == kNoFile) {
    fuse_reply_err(req, EBADF);
    return;
  }
  fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in));
  out.buf[0].flags = static_cast<fuse_buf_flags>(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
  out.buf[0].fd = static_cast<int>(fi->fh);
  out.buf[0].pos = offset;
  ssize_t n = fuse_buf_copy(&out, in, FUSE_BUF_SPLICE_NONBLOCK);
  if (n < 0) {
    fuse_reply_err(req, static_cast<int>(-n));
    return;
  }
  fuse_reply_write(req, static_cast<size_t>(n));
}

void opFlush(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  if (fi->fh == kNoFile) {
    fuse_reply_err(req, 0);
    return;
  }
  // A network filesystem reports write errors at close: close a duplicate so
  // that each close(2) on the view reaches SOURCE.
  int dup = ::dup(static_cast<int>(fi->fh));
  int err = dup < 0 || ::close(dup) != 0 ? errno : 0;
  fuse_reply_err(req, err);
}

void opRelease(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  if (fi->fh != kNoFile) ::close(static_cast<int>(fi->fh));
  fuse_reply_err(req, 0);
}

void opFsync(fuse_req_t req, fuse_ino_t /*ino*/, int datasync, fuse_file_info* fi) {
  if (fi->fh == kNoFile) {
    fuse_reply_err(req, 0);
    return;
  }
  int fd = static_cast<int>(fi->fh);
  int r = datasync ? ::fdatasync(fd) : ::fsync(fd);
  fuse_reply_err(req, r == 0 ? 0 : errno);
}

// An open directory: the stream, and where the kernel last asked to read.
struct DirHandle {
  DIR* dir = nullptr;
  off_t offset = 0;
  dirent* pending = nullptr;  // read but not yet handed to the kernel
  ~DirHandle() {
    if (dir != nullptr) ::closedir(dir);
  }
};

DirHandle* dirOf(fuse_file_info* fi) { return reinterpret_cast<DirHandle*>(fi->fh); }

void opOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  int fd = viewOf(req).table->fdOf(ino);
  if (fd < 0) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  int dirFd = ::openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirFd < 0) {
    fuse_reply_err(req, errno);
    return;
  }
  auto handle = std::make_unique<DirHandle>();
  handle->dir = ::fdopendir(dirFd);
  if (handle->dir == nullptr) {
    int err = errno;
    ::close(dirFd);
    fuse_reply_err(req, err);
    return;
  }
  // No cache_readdir: every listing is read from SOURCE, which changes
  // behind our back. The kernel owns the handle once the reply is sent.
  DirHandle* owned = handle.release();
  fi->fh = reinterpret_cast<uint64_t>(owned);
  if (fuse_reply_open(req, fi) != 0) delete owned;
}

void opReaddir(fuse_req_t req, fuse_ino_t /*ino*/, size_t size, off_t offset, fuse_file_info* fi) {
  DirHandle* d = dirOf(fi);
  if (offset != d->offset) {
    ::seekdir(d->dir, offset);
    d->pending = nullptr;
    d->offset = offset;
  }
  std::vector<char> buf(size);
  size_t used = 0;
  while (true) {
    dirent* entry = d->pending;
    if (entry == nullptr) {
      errno = 0;
      entry = ::readdir(d->dir);
      if (entry == nullptr) {
        if (errno != 0 && used == 0) {
          fuse_reply_err(req, errno);
          return;
        }
        break;
      }
    }
    struct stat st {};
    st.st_ino = entry->d_ino;
    st.st_mode = static_cast<mode_t>(entry->d_type) << 12;
    off_t next = entry->d_off;
    size_t need = fuse_add_direntry(req, buf.data() + used, size - used, entry->d_name, &st, next);
    if (need > size - used) {
      d->pending = entry;  // the kernel asks again from this offset
      break;
    }
    d->pending = nullptr;
    used += need;
    d->offset = next;
  }
  fuse_reply_buf(req, buf.data(), used);
}

void opReleasedir(fuse_req_t req, fuse_ino_t /*ino*/, fuse_file_info* fi) {
  delete dirOf(fi);
  fuse_reply_err(req, 0);
}

void opFsyncdir(fuse_req_t req, fuse_ino_t /*ino*/, int datasync, fuse_file_info* fi) {
  int fd = ::dirfd(dirOf(fi)->dir);
  int r = datasync ? ::fdatasync(fd) : ::fsync(fd);
  fuse_reply_err(req, r == 0 ? 0 : errno);
}

void opStatfs(fuse_req_t req, fuse_ino_t ino) {
  int fd = viewOf(req).table->fdOf(ino);
  if (fd < 0) fd = viewOf(req).table->fdOf(FUSE_ROOT_ID);
  struct statvfs st;
  if (::fstatvfs(fd, &st) != 0) {
    fuse_reply_err(req, errno);
    return;
  }
  fuse_reply_statfs(req, &st);
}

void opAccess(fuse_req_t req, fuse_ino_t ino, int mask) {
  int fd = viewOf(req).table->fdOf(ino);
  if (isOwn(req) || fd < 0) {
    fuse_reply_err(req, fd < 0 && !isOwn(req) ? ESTALE : 0);
    return;
  }
  int r = ::faccessat(AT_FDCWD, procPath(fd).c_str(), mask, 0);
  fuse_reply_err(req, r == 0 ? 0 : errno);
}

// Extended attributes go through /proc/self/fd, as an O_PATH fd has none.
void replySized(fuse_req_t req, size_t size, ssize_t n, const char* data) {
  if (n < 0) {
    fuse_reply_err(req, errno);
  } else if (size == 0) {
    fuse_reply_xattr(req, static_cast<size_t>(n));
  } else {
    fuse_reply_buf(req, data, static_cast<size_t>(n));
  }
}

void opGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  int fd = viewOf(req).table->fdOf(ino);
  if (fd < 0) {
    fuse_reply_err(req, ENODATA);
    return;
  }
  std::vector<char> value(size);
  ssize_t n = ::getxattr(procPath(fd).c_str(), name, size ? value.data() : nullptr, size);
  replySized(req, size, n, value.data());
}

void opListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  int fd = viewOf(req).table->fdOf(ino);
  if (fd < 0) {
    replySized(req, size, 0, nullptr);
    return;
  }
  std::vector<char> names(size);
  ssize_t n = ::listxattr(procPath(fd).c_str(), size ? names.data() : nullptr, size);
  replySized(req, size, n, names.data());
}

void opSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  int fd = viewOf(req).table->fdOf(ino);
  if (isOwn(req)) {
    fuse_reply_err(req, 0);
    return;
  }
  int r = fd < 0 ? -1 : ::setxattr(procPath(fd).c_str(), name, value, size, flags);
  fuse_reply_err(req, r == 0 ? 0 : (fd < 0 ? ESTALE : errno));
}

void opRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  int fd = viewOf(req).table->fdOf(ino);
  if (isOwn(req)) {
    fuse_reply_err(req, 0);
    return;
  }
  int r = fd < 0 ? -1 : ::removexattr(procPath(fd).c_str(), name);
  fuse_reply_err(req, r == 0 ? 0 : (fd < 0 ? ESTALE : errno));
}

}  // namespace

void addDataOperations(fuse_lowlevel_ops* ops) {
  ops->init = opInit;
  ops->open = opOpen;
  ops->read = opRead;
  ops->write_buf = opWriteBuf;
  ops->flush = opFlush;
  ops->release = opRelease;
  ops->fsync = opFsync;
  ops->opendir = opOpendir;
  ops->readdir = opReaddir;
  ops->releasedir = opReleasedir;
  ops->fsyncdir = opFsyncdir;
  ops->statfs = opStatfs;
  ops->access = opAccess;
  ops->getxattr = opGetxattr;
  ops->listxattr = opListxattr;
  ops->setxattr = opSetxattr;
  ops->removexattr = opRemovexattr;
}

}  // namespace rnotify::fuse
