// Credentials: who a client is on this host (a uid, its groups), and acting
// as that user for a permission check. rnotifyd never re-implements
// permission rules: to decide whether a user may watch a directory it opens
// the directory with that user's filesystem identity (fsuid, fsgid and
// supplementary groups, switched for the calling thread only), so that the
// kernel applies modes, ACLs and every ancestor's search permission.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace rnotify {

struct Credentials {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups, from the group database
  std::string user;           // for logs
  std::string how;            // how the peer was identified: "SO_PEERCRED", "TLS client certificate", "token"
};

// The credentials of a local user (its primary group and the groups the group
// database gives it). Nothing when the uid has no passwd entry: its groups
// are then only its primary gid.
Credentials credentialsOfUid(uid_t uid, gid_t gid);
std::optional<Credentials> credentialsOfUser(const std::string& name);

// While alive, this thread's filesystem identity is `who`'s. Only a process
// with CAP_SETUID/CAP_SETGID (root) can switch; ok() says whether it did.
class ActingAs {
 public:
  explicit ActingAs(const Credentials& who);
  ~ActingAs();
  ActingAs(const ActingAs&) = delete;
  ActingAs& operator=(const ActingAs&) = delete;
  bool ok() const { return ok_; }

 private:
  bool ok_ = false;
  uid_t oldUid_ = 0;
  gid_t oldGid_ = 0;
  std::vector<gid_t> oldGroups_;
};

// Whether checks must be made as the client: the daemon runs as another user
// than the client (a root daemon serving unix-socket or TLS users).
bool mustActAs(const Credentials& who);

}  // namespace rnotify
