// TCP helpers for starting servers: a free port on 127.0.0.1, and "does this
// address accept connections yet", optionally from inside a network namespace
// (the probe runs on a short-lived thread that joins the namespace; setns(2)
// with CLONE_NEWNET affects only the calling thread).
#pragma once

#include <string>

namespace rnotify::testbed {

class Netns;

// A port that was free on 127.0.0.1 a moment ago (bind to port 0, read it back).
int freePort();
// One connect attempt to address:port; true if it was accepted.
bool tcpAccepts(const std::string& address, int port, const Netns* netns = nullptr);

}  // namespace rnotify::testbed
