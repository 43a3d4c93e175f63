// The C boundary of the client library (include/rnotify/rnotify.h). Nothing
// may throw across it: every entry point catches everything and turns it into
// an errno and a message for rnotify_last_error().
#include <cerrno>
#include <new>
#include <string>

#include "client/client.h"
#include "rnotify/rnotify.h"

struct rnotify_handle {
  std::unique_ptr<rnotify::Client> client;
  rnotify::ClientEvent current;
  std::string lastError;
};

namespace {

int fail(rnotify_t* rn, int code, std::string message) {
  if (rn != nullptr) rn->lastError = std::move(message);
  errno = code;
  return -1;
}

template <typename F>
int guarded(rnotify_t* rn, F&& body) {
  if (rn == nullptr) {
    errno = EINVAL;
    return -1;
  }
  try {
    return body();
  } catch (const std::bad_alloc&) {
    return fail(rn, ENOMEM, "out of memory");
  } catch (const std::exception& e) {
    return fail(rn, EIO, std::string("internal error: ") + e.what());
  } catch (...) {
    return fail(rn, EIO, "internal error");
  }
}

}  // namespace

extern "C" {

rnotify_t* rnotify_init(unsigned flags) {
  (void)flags;  // every descriptor rnotify opens is close-on-exec already
  try {
    auto client = rnotify::Client::create();
    if (!client) {
      errno = client.error().code;
      return nullptr;
    }
    auto* rn = new rnotify_handle();
    rn->client = std::move(*client);
    return rn;
  } catch (...) {
    errno = ENOMEM;
    return nullptr;
  }
}

void rnotify_close(rnotify_t* rn) {
  try {
    delete rn;
  } catch (...) {
  }
}

int rnotify_fd(const rnotify_t* rn) {
  if (rn == nullptr) {
    errno = EINVAL;
    return -1;
  }
  return rn->client->fd();
}

int rnotify_add_watch(rnotify_t* rn, const char* path, uint32_t mask, unsigned flags) {
  return guarded(rn, [&] {
    if (path == nullptr) return fail(rn, EFAULT, "cannot watch: no path given");
    auto wd = rn->client->addWatch(path, mask, flags);
    if (!wd) return fail(rn, wd.error().code, wd.error().message);
    rn->lastError.clear();
    return *wd;
  });
}

int rnotify_rm_watch(rnotify_t* rn, int wd) {
  return guarded(rn, [&] {
    auto status = rn->client->removeWatch(wd);
    if (!status) return fail(rn, status.error().code, status.error().message);
    return 0;
  });
}

int rnotify_next(rnotify_t* rn, struct rnotify_event* ev, int timeout_ms) {
  return guarded(rn, [&] {
    if (ev == nullptr) return fail(rn, EFAULT, "no event buffer given");
    auto got = rn->client->next(&rn->current, timeout_ms);
    if (!got) return fail(rn, got.error().code, got.error().message);
    if (*got == 0) return 0;
    ev->wd = rn->current.wd;
    ev->mask = rn->current.mask;
    ev->cookie = rn->current.cookie;
    ev->seq = rn->current.seq;
    ev->path = rn->current.path.c_str();
    ev->name = rn->current.name.c_str();
    return 1;
  });
}

const char* rnotify_last_error(const rnotify_t* rn) { return rn == nullptr ? "" : rn->lastError.c_str(); }

const char* rnotify_watch_source(const rnotify_t* rn, int wd) {
  if (rn == nullptr) return nullptr;
  try {
    return rn->client->watchSource(wd);
  } catch (...) {
    return nullptr;
  }
}

}  // extern "C"
