#include "client/nfs_activity.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <system_error>
#include <vector>

#include "common/read_file.h"

namespace rnotify {
namespace {

// Operations (NFSv3 and v4 names) after which the server may report a change.
constexpr std::array<std::string_view, 20> kChanging = {
    "WRITE", "COMMIT", "OPEN", "OPEN_NOATTR", "SETATTR",  "CREATE",      "MKDIR",    "SYMLINK",    "MKNOD", "REMOVE",
    "RMDIR", "RENAME", "LINK", "SETACL",      "SETXATTR", "REMOVEXATTR", "ALLOCATE", "DEALLOCATE", "CLONE", "COPY"};

// mountstats writes the mount point with space, tab, newline and backslash
// as octal escapes (seq_escape), as mountinfo does.
std::string escaped(std::string_view path) {
  std::string out;
  for (char c : path) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\\') {
      static constexpr char kDigits[] = "01234567";
      const auto u = static_cast<unsigned char>(c);
      out.push_back('\\');
      out.push_back(kDigits[(u >> 6) & 7]);
      out.push_back(kDigits[(u >> 3) & 7]);
      out.push_back(kDigits[u & 7]);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::vector<std::string_view> words(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    const size_t start = i;
    while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

bool number(std::string_view text, uint64_t* value) {
  const char* end = text.data() + text.size();
  auto [at, error] = std::from_chars(text.data(), end, *value);
  return error == std::errc{} && at == end && !text.empty();
}

}  // namespace

std::optional<NfsActivity::Counters> NfsActivity::parse(std::string_view text, std::string_view mountPoint) {
  const std::string header = " mounted on " + escaped(mountPoint) + " with fstype nfs";
  bool inside = false;
  bool found = false;
  Counters counters;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.compare(0, 7, "device ") == 0) {
      inside = line.find(header) != std::string_view::npos;
      // Mounts stacked on one point: the last listed is the one seen there.
      if (inside) counters = Counters{};
      found = found || inside;
      continue;
    }
    if (!inside) continue;
    const auto w = words(line);
    if (w.empty()) continue;
    if (w[0] == "xprt:") {
      // xprt: tcp port bind_count connect_count connect_time idle_time sends recvs ...
      // (udp has no connect fields: sends and recvs come two earlier)
      const size_t sends = w.size() > 1 && w[1] == "udp" ? 4 : 7;
      uint64_t s = 0;
      uint64_t r = 0;
      if (w.size() > sends + 1 && number(w[sends], &s) && number(w[sends + 1], &r)) {
        counters.sends += s;
        counters.recvs += r;
      }
      continue;
    }
    // Per-operation lines: "NAME: ops ntrans timeouts ..."
    if (w.size() >= 2 && w[0].size() > 1 && w[0].back() == ':') {
      const std::string_view name = w[0].substr(0, w[0].size() - 1);
      uint64_t ops = 0;
      for (std::string_view changing : kChanging) {
        if (name == changing && number(w[1], &ops)) counters.changes += ops;
      }
    }
  }
  if (!found) return std::nullopt;
  return counters;
}

std::optional<NfsActivity::Counters> NfsActivity::read(const std::string& mountPoint) const {
  auto text = readFile(path_, 4u << 20);
  if (!text) return std::nullopt;
  return parse(*text, mountPoint);
}

bool NfsActivity::busy(int wd, const std::string& mountPoint, Clock::time_point now, Clock::duration window) {
  return busy(wd, read(mountPoint), now, window);
}

bool NfsActivity::busy(int wd, const std::optional<Counters>& counters, Clock::time_point now, Clock::duration window) {
  if (!counters) return false;
  auto [it, first] = last_.try_emplace(
      wd, Look{*counters, {}, counters->sends >= counters->recvs ? counters->sends - counters->recvs : 0});
  if (first) return false;  // start(): the baseline
  Look& look = it->second;
  const Counters before = look.counters;
  look.counters = *counters;
  // Requests never answered (a retransmission, a timeout) leave sends above
  // recvs for good: unanswered is what exceeds the least difference seen.
  const uint64_t unanswered = counters->sends >= counters->recvs ? counters->sends - counters->recvs : 0;
  look.leastUnanswered = std::min(look.leastUnanswered, unanswered);
  if (counters->changes != before.changes || (counters->sends != before.sends && unanswered > look.leastUnanswered)) {
    look.sawActivity = now;
    return true;
  }
  return look.sawActivity != Clock::time_point{} && now - look.sawActivity < window;
}

}  // namespace rnotify
