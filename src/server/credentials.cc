#include "server/credentials.h"

#include <grp.h>
#include <pwd.h>
#include <sys/fsuid.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace rnotify {
namespace {

// The raw system calls change the calling thread only (glibc's wrappers
// change every thread of the process).
long setThreadGroups(const std::vector<gid_t>& groups) {
  return ::syscall(SYS_setgroups, groups.size(), groups.empty() ? nullptr : groups.data());
}

std::vector<gid_t> threadGroups() {
  int n = ::getgroups(0, nullptr);
  std::vector<gid_t> groups(n > 0 ? static_cast<size_t>(n) : 0);
  if (n > 0) n = ::getgroups(n, groups.data());
  groups.resize(n > 0 ? static_cast<size_t>(n) : 0);
  return groups;
}

std::vector<gid_t> groupsOf(const char* name, gid_t gid) {
  int n = 32;
  std::vector<gid_t> groups(static_cast<size_t>(n));
  if (::getgrouplist(name, gid, groups.data(), &n) < 0) {
    groups.resize(static_cast<size_t>(n));
    if (::getgrouplist(name, gid, groups.data(), &n) < 0) n = 0;
  }
  groups.resize(static_cast<size_t>(n > 0 ? n : 0));
  return groups;
}

}  // namespace

Credentials credentialsOfUid(uid_t uid, gid_t gid) {
  Credentials c;
  c.uid = uid;
  c.gid = gid;
  c.user = "uid " + std::to_string(uid);
  passwd pw{}, *found = nullptr;
  char buffer[4096];
  if (::getpwuid_r(uid, &pw, buffer, sizeof buffer, &found) == 0 && found != nullptr) {
    c.user = pw.pw_name;
    c.groups = groupsOf(pw.pw_name, gid);
  } else {
    c.groups = {gid};
  }
  return c;
}

std::optional<Credentials> credentialsOfUser(const std::string& name) {
  passwd pw{}, *found = nullptr;
  char buffer[4096];
  if (::getpwnam_r(name.c_str(), &pw, buffer, sizeof buffer, &found) != 0 || found == nullptr) return std::nullopt;
  return credentialsOfUid(pw.pw_uid, pw.pw_gid);
}

ActingAs::ActingAs(const Credentials& who) {
  if (::geteuid() != 0) return;
  oldGroups_ = threadGroups();
  oldUid_ = static_cast<uid_t>(::setfsuid(static_cast<uid_t>(-1)));
  oldGid_ = static_cast<gid_t>(::setfsgid(static_cast<gid_t>(-1)));
  if (setThreadGroups(who.groups) != 0) return;
  ::setfsgid(who.gid);
  ::setfsuid(who.uid);
  // setfsuid reports the previous value, never an error: ask again.
  ok_ = static_cast<uid_t>(::setfsuid(static_cast<uid_t>(-1))) == who.uid &&
        static_cast<gid_t>(::setfsgid(static_cast<gid_t>(-1))) == who.gid;
}

ActingAs::~ActingAs() {
  if (::geteuid() != 0) return;
  ::setfsuid(oldUid_);
  ::setfsgid(oldGid_);
  setThreadGroups(oldGroups_);
}

bool mustActAs(const Credentials& who) { return who.uid != ::geteuid(); }

}  // namespace rnotify
