// HOST[:PORT] as endpoints, listen addresses and SMB URLs write it: "nas",
// "nas:7311", "[::1]", "[::1]:7311"; a bare IPv6 address (more than one
// ':') is a host without a port. One parser for the client's endpoints, the
// config check, rnotifyd's --listen and SMB locations.
#pragma once

#include <string>
#include <string_view>

namespace rnotify {

// *host, and *port when one is given (else it is left as it was). False when
// malformed: an empty host, an unclosed bracket, or a port that is not a
// number in 1-65535 (0-65535 with allowZero: "any free port").
bool splitHostPort(std::string_view text, std::string* host, int* port, bool allowZero = false);

}  // namespace rnotify
