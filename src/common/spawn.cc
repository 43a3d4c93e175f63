#include "common/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <unistd.h>

#include <algorithm>
#include <string_view>

#include "common/unique_fd.h"

extern char** environ;

namespace rnotify {

std::vector<std::string> environmentWithoutShim() {
  std::vector<std::string> out;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    if (entry.rfind("LD_PRELOAD=", 0) != 0 || entry.find("librnotify-preload") == std::string_view::npos) {
      out.emplace_back(entry);
      continue;
    }
    std::string kept;
    std::string_view list = entry.substr(11);
    while (!list.empty()) {
      size_t end = list.find_first_of(": ");
      std::string_view item = list.substr(0, end);
      if (!item.empty() && item.find("librnotify-preload") == std::string_view::npos) {
        kept += (kept.empty() ? "" : ":") + std::string(item);
      }
      if (end == std::string_view::npos) break;
      list.remove_prefix(end + 1);
    }
    if (!kept.empty()) out.push_back("LD_PRELOAD=" + kept);
  }
  return out;
}

Result<pid_t> spawnHelper(const std::vector<std::string>& argv, const std::vector<FdMapping>& fds) {
  if (argv.empty()) return Error{EINVAL, "no program to start"};
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> envStrings = environmentWithoutShim();
  std::vector<char*> env;
  env.reserve(envStrings.size() + 1);
  for (std::string& e : envStrings) env.push_back(e.data());
  env.push_back(nullptr);

  int highest = STDERR_FILENO;
  for (const auto& [from, to] : fds) highest = std::max(highest, to);
  // The actions run in order: a source that is also an earlier target (a
  // host that closed its standard descriptors gets 0 or 1 from socketpair)
  // would be overwritten first. Each source is therefore copied above every
  // target, and the copies are what is mapped.
  std::vector<UniqueFd> copies;
  for (const auto& [from, to] : fds) {
    copies.emplace_back(::fcntl(from, F_DUPFD_CLOEXEC, highest + 1));
    if (!copies.back()) return lastError("cannot start '" + argv[0] + "': fcntl(F_DUPFD_CLOEXEC)");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  for (size_t i = 0; i < fds.size(); ++i) posix_spawn_file_actions_adddup2(&actions, copies[i].get(), fds[i].second);
  // Nothing else of the host program's: a descriptor it left inheritable (a
  // pipe to its own parent, a socket) must not stay open in a helper.
  posix_spawn_file_actions_addclosefrom_np(&actions, highest + 1);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  posix_spawnattr_setpgroup(&attr, 0);
  sigset_t all, none;
  sigfillset(&all);
  sigemptyset(&none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setsigmask(&attr, &none);
  pid_t pid = -1;
  const int rc = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return Error::fromErrno(rc, "cannot start '" + argv[0] + "'");
  return pid;
}

}  // namespace rnotify
