// TempDir: a unique directory for one test, removed with everything below it
// when the test ends, pass or fail. Mounts left below it (a failed teardown)
// are detached first, so removal never reaches through a mount into a server.
#pragma once

#include <string>

namespace rnotify::testbed {

class TempDir {
 public:
  // Creates <base>/<prefix>XXXXXX; base defaults to $TMPDIR or /tmp (ext4 here,
  // with user xattrs, which the ATTRIB tests need).
  explicit TempDir(const std::string& prefix = "rnotify-test-", const std::string& base = "");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path()/rel
  std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }
  // Creates path()/rel (and parents) and returns its path.
  std::string mkdir(const std::string& rel) const;

 private:
  std::string path_;
};

// Writes `content` to `path` (created or truncated); throws on failure.
void writeFile(const std::string& path, const std::string& content);
// The whole file; throws on failure.
std::string readFile(const std::string& path);

}  // namespace rnotify::testbed
