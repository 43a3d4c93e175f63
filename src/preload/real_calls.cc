#include "preload/real_calls.h"

#include <dlfcn.h>

namespace rnotify::preload {
namespace {

template <typename F>
void resolve(F*& out, const char* name) {
  out = reinterpret_cast<F*>(::dlsym(RTLD_NEXT, name));
}

RealCalls load() {
  RealCalls r;
  resolve(r.inotifyInit1, "inotify_init1");
  resolve(r.inotifyAddWatch, "inotify_add_watch");
  resolve(r.inotifyRmWatch, "inotify_rm_watch");
  resolve(r.read, "read");
  resolve(r.readv, "readv");
  resolve(r.readChk, "__read_chk");
  resolve(r.close, "close");
  resolve(r.dup, "dup");
  resolve(r.dup2, "dup2");
  resolve(r.dup3, "dup3");
  resolve(r.fcntl, "fcntl");
  resolve(r.fcntl64, "fcntl64");
  resolve(r.ioctl, "ioctl");
  resolve(r.closeRange, "close_range");
  if (r.fcntl64 == nullptr) r.fcntl64 = r.fcntl;
  return r;
}

}  // namespace

const RealCalls& real() {
  static const RealCalls calls = load();
  return calls;
}

}  // namespace rnotify::preload
