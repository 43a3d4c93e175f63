// ExportRoots: the directories a daemon serves. A requested path is first
// checked by its spelling alone ("." and ".." applied lexically): one that
// does not name a place inside an export is refused without touching the
// filesystem, so that the answer cannot tell whether it exists. Inside, it is
// resolved by the kernel, with openat2(RESOLVE_BENEATH) from the export's own
// descriptor and as the client: "..", absolute symbolic links and links that
// lead out are refused during the walk itself, so a directory swapped for a
// symbolic link between a check and the watch cannot lead out either. The
// descriptor of what was resolved is kept: everything after reaches the entry
// through it (ConfinedTree), never by its path again.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "server/credentials.h"

namespace rnotify {

class ExportRoots {
 public:
  // Each spec is PATH or NAME=PATH (NAME without '/'): NAME is what NFS and
  // SMB clients call the export (an NFS pseudo path's first component, an SMB
  // share), by default the directory's own name (unless another export has
  // it too: then neither is called so, save one named explicitly). Canonicalises each root and
  // opens it; fails if one does not exist or is not a directory, or if two
  // exports have the same name.
  static Result<ExportRoots> create(const std::vector<std::string>& specs);

  struct Resolved {
    std::string path;  // canonical, inside an export
    UniqueFd fd;       // O_PATH, opened beneath the export as the client
    size_t exportIndex = 0;
    uint64_t dev = 0;
    uint64_t ino = 0;
    bool isDirectory = false;
  };
  // Resolves a client's path (absolute, or relative to base) inside an
  // export. With `as`, the path is opened as that user, so that the kernel
  // checks search permission on every directory on the way and read
  // permission on the target (ACLs included). Errors: EINVAL empty or
  // containing a NUL byte; ENAMETOOLONG. For a client that is the daemon's
  // own user: ENOENT missing; EACCES outside every export, or not permitted;
  // ELOOP a symbolic-link loop. For any other user (mustActAs), every path it
  // may not watch, whether missing, outside, or not permitted, gets the one
  // answer forbidden(requested): a user must not learn what exists where it
  // may not look.
  // Messages quote `shown` when given (the path as the client spelled it,
  // before mapExportPath), else `requested`.
  Result<Resolved> resolveEntry(std::string_view requested, const std::string& base, const Credentials* as = nullptr,
                                std::string_view shown = {}) const;
  // The answer to another user for a path it may not watch, for whatever
  // reason. EACCES, not ENOENT: a client ends a watch whose path is ENOENT
  // on the server as deleted (client.cc, after a reconnection), which would
  // be a false statement about a path that may well exist; EACCES makes it
  // fail the watch and say so, without ending anything in its view.
  static Error forbidden(std::string_view requested);
  Result<std::string> resolve(std::string_view requested, const std::string& base) const {
    auto r = resolveEntry(requested, base);
    if (!r) return r.error();
    return r->path;
  }
  // A path as an NFS or SMB client names it (proto::kWatchExportPath), made
  // a path of this server, by spelling alone: itself if an export holds it
  // ("/srv/share/w" of knfsd's nas:/srv/share), else its first component
  // taken as an export's name, exactly or else ignoring ASCII case as SMB
  // does ("/nfs/w" of ganesha's pseudo path, "/Share/w" of //nas/share).
  // A path already inside, and anything else, is returned as it came (for
  // resolveEntry to resolve or refuse).
  std::string mapExportPath(std::string_view requested) const;
  const std::vector<std::string>& roots() const { return roots_; }
  const std::vector<std::string>& names() const { return names_; }
  int fd(size_t index) const { return fds_[index].get(); }
  // A descriptor on the export's mount that open_by_handle_at takes (not
  // O_PATH); -1 when the daemon cannot open by handle (not root).
  int mountFd(size_t index) const { return mountFds_[index].get(); }

 private:
  std::vector<std::string> roots_;
  std::vector<std::string> names_;  // "" for "/" and for a directory's own name that two exports share
  std::vector<bool> named_;         // NAME=PATH
  std::vector<UniqueFd> fds_;       // O_PATH descriptors of roots_
  std::vector<UniqueFd> mountFds_;  // see mountFd()
};

}  // namespace rnotify
