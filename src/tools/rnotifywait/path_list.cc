// Implements PathList; see path_list.h.
#include "tools/rnotifywait/path_list.h"

namespace rnotify::wait {

void PathList::add(const std::string& entry) {
  if (entry.empty() || entry == "@") return;
  if (entry[0] == '@') {
    exclude.push_back(entry.substr(1));
  } else {
    watch.push_back(entry);
  }
}

void PathList::addLines(std::istream& in) {
  std::string line;
  while (std::getline(in, line)) add(line);
}

}  // namespace rnotify::wait
