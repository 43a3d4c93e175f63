// The files to watch and the "@" exclusions, from the operands and from
// --fromfile (one path per line, '-' for stdin), as inotifywait builds them:
// file entries first, then operands; empty lines and a lone '@' are skipped.
#pragma once

#include <istream>
#include <string>
#include <vector>

namespace rnotify::wait {

struct PathList {
  std::vector<std::string> watch;
  std::vector<std::string> exclude;  // without the '@'

  void add(const std::string& entry);
  // Reads lines until EOF; a missing final newline is fine.
  void addLines(std::istream& in);
};

}  // namespace rnotify::wait
