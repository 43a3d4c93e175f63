// Product binary paths; see product.h.
#include "product.h"

#include <unistd.h>

#include <cstdlib>

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
