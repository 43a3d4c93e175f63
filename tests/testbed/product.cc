// Product binary paths; see product.h.
#include "product.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#include "common/proc_stat.h"
#include "common/read_file.h"

namespace rnotify::testbed {

std::string rnotifydPath() {
#ifdef RNOTIFYD_PATH
  return RNOTIFYD_PATH;
#else
  return "";
#endif
}

std::string rnotifywaitPath() {
#ifdef RNOTIFYWAIT_PATH
  return RNOTIFYWAIT_PATH;
#else
  return "";
#endif
}

std::string agentCommand() {
  const char* extra = std::getenv("RNOTIFY_TEST_AGENT_ARGS");
  return rnotifydPath() + " --stdio" + (extra != nullptr && *extra != '\0' ? std::string(" ") + extra : "");
}

std::vector<pid_t> agentDaemons() {
  std::vector<pid_t> found;
  for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    auto cmdline = rnotify::readFile("/proc/" + name + "/cmdline");
    if (!cmdline.ok() || cmdline->rfind(rnotifydPath() + '\0', 0) != 0) continue;
    if (cmdline->find(std::string("--agent-daemon") + '\0') == std::string::npos) continue;
    const pid_t pid = std::stoi(name);
    auto stat = readProcStat(pid);
    if (stat && stat->state != 'Z') found.push_back(pid);
  }
  return found;
}

std::string missingProduct() {
  for (const auto& [name, path] :
       {std::pair{"rnotifyd", rnotifydPath()}, std::pair{"rnotifywait", rnotifywaitPath()}}) {
    if (path.empty()) return std::string(name) + " is not part of this build (its CMake target does not exist yet)";
    if (::access(path.c_str(), X_OK) != 0)
      return std::string(name) + " is not built: " + path + " (run ninja " + name + ")";
  }
  return "";
}

}  // namespace rnotify::testbed
