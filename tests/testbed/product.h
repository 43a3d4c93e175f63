// Where the product binaries under test are. The paths come from the build
// (tests/testbed/CMakeLists.txt passes $<TARGET_FILE:...>); a binary whose
// target does not exist yet gives "", and tests then skip with missingProduct().
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace rnotify::testbed {

std::string rnotifydPath();
std::string rnotifywaitPath();
// The RNOTIFY_AGENT value that makes the client run the freshly built agent
// on the server: "<abs path of rnotifyd> --stdio", plus $RNOTIFY_TEST_AGENT_ARGS
// (e.g. "--watcher inotify" to run a suite against one backend).
std::string agentCommand();
// "" when rnotifyd and rnotifywait are built and executable, else what is missing.
std::string missingProduct();

}  // namespace rnotify::testbed
