// TempDir; see temp_dir.h.
#include "temp_dir.h"

#include <sys/mount.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "mount_table.h"

namespace rnotify::testbed {

TempDir::TempDir(const std::string& prefix, const std::string& base) {
  std::string dir = base;
  if (dir.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    dir = (tmp != nullptr && *tmp != '\0') ? tmp : "/tmp";
  }
  std::string templ = dir + "/" + prefix + "XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    throw std::runtime_error("mkdtemp '" + templ + "': " + std::strerror(errno));
  }
  path_ = buf.data();
}

TempDir::~TempDir() {
  try {
    // Deepest first, so that nested mounts come off before their parents.
    auto mounts = mountsBelow(path_);
    for (auto it = mounts.rbegin(); it != mounts.rend(); ++it) {
      ::umount2(it->c_str(), MNT_DETACH);
    }
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  } catch (...) {
  }
}

std::string TempDir::mkdir(const std::string& rel) const {
  std::string p = *this / rel;
  std::filesystem::create_directories(p);
  return p;
}

void writeFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  out.close();
  if (!out) throw std::runtime_error("cannot write '" + path + "'");
}

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read '" + path + "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace rnotify::testbed
