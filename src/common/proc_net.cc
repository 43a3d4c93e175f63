#include "common/proc_net.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <unistd.h>

#include <cstring>
#include <unordered_set>

#include "common/read_file.h"

namespace rnotify {
namespace {

int hexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool parseHex(std::string_view text, uint64_t* out) {
  if (text.empty() || text.size() > 16) return false;
  uint64_t value = 0;
  for (char c : text) {
    int d = hexDigit(c);
    if (d < 0) return false;
    value = value << 4 | static_cast<uint64_t>(d);
  }
  *out = value;
  return true;
}

// "0100007F:0016": the address as the kernel prints it (32-bit words in host
// byte order), then the port.
bool parseEndpoint(std::string_view text, bool ipv6, std::string* address, uint16_t* port) {
  size_t colon = text.find(':');
  size_t hexLength = ipv6 ? 32 : 8;
  if (colon != hexLength) return false;
  unsigned char bytes[16];
  for (size_t word = 0; word < hexLength / 8; ++word) {
    uint64_t value;
    if (!parseHex(text.substr(word * 8, 8), &value)) return false;
    uint32_t host = static_cast<uint32_t>(value);
    std::memcpy(bytes + word * 4, &host, 4);
  }
  uint64_t portValue;
  if (!parseHex(text.substr(colon + 1), &portValue) || portValue > 0xffff) return false;
  char buffer[INET6_ADDRSTRLEN];
  if (::inet_ntop(ipv6 ? AF_INET6 : AF_INET, bytes, buffer, sizeof buffer) == nullptr) return false;
  *address = canonicalAddress(buffer);
  *port = static_cast<uint16_t>(portValue);
  return !address->empty();
}

std::vector<std::string_view> fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && line[i] == ' ') ++i;
    size_t start = i;
    while (i < line.size() && line[i] != ' ') ++i;
    if (i > start) out.push_back(line.substr(start, i - start));
  }
  return out;
}

}  // namespace

std::string canonicalAddress(std::string_view address) {
  std::string text(address);
  unsigned char bytes[16];
  char buffer[INET6_ADDRSTRLEN];
  if (::inet_pton(AF_INET, text.c_str(), bytes) == 1) {
    return ::inet_ntop(AF_INET, bytes, buffer, sizeof buffer) ? buffer : "";
  }
  if (::inet_pton(AF_INET6, text.c_str(), bytes) != 1) return "";
  static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(bytes, kMapped, 12) == 0) {
    return ::inet_ntop(AF_INET, bytes + 12, buffer, sizeof buffer) ? buffer : "";
  }
  return ::inet_ntop(AF_INET6, bytes, buffer, sizeof buffer) ? buffer : "";
}

std::vector<std::pair<uint64_t, TcpConnection>> parseProcNetTcp(std::string_view table, bool ipv6) {
  std::vector<std::pair<uint64_t, TcpConnection>> out;
  size_t pos = table.find('\n');  // the header line
  while (pos != std::string_view::npos && pos + 1 < table.size()) {
    size_t end = table.find('\n', pos + 1);
    std::string_view line = table.substr(pos + 1, end == std::string_view::npos ? end : end - pos - 1);
    pos = end;
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    std::vector<std::string_view> f = fields(line);
    if (f.size() < 10 || f[3] != "01") continue;  // 01: ESTABLISHED
    TcpConnection c;
    if (!parseEndpoint(f[1], ipv6, &c.localAddress, &c.localPort)) continue;
    if (!parseEndpoint(f[2], ipv6, &c.remoteAddress, &c.remotePort)) continue;
    uint64_t inode = 0;
    for (char ch : f[9]) {
      if (ch < '0' || ch > '9') {
        inode = 0;
        break;
      }
      inode = inode * 10 + static_cast<uint64_t>(ch - '0');
    }
    if (inode != 0) out.emplace_back(inode, std::move(c));
  }
  return out;
}

Result<std::vector<TcpConnection>> tcpConnectionsOf(int pid, const std::string& procRoot) {
  std::string base = procRoot + "/" + std::to_string(pid);
  std::unordered_set<uint64_t> sockets;
  DIR* dir = ::opendir((base + "/fd").c_str());
  if (dir == nullptr) return lastError("open '" + base + "/fd'");
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    char target[64];
    ssize_t n = ::readlinkat(::dirfd(dir), entry->d_name, target, sizeof target - 1);
    if (n <= 0) continue;
    target[n] = '\0';
    unsigned long long inode;
    if (std::sscanf(target, "socket:[%llu]", &inode) == 1) sockets.insert(inode);
  }
  ::closedir(dir);
  std::vector<TcpConnection> out;
  if (sockets.empty()) return out;
  for (bool ipv6 : {false, true}) {
    auto table = readFile(base + (ipv6 ? "/net/tcp6" : "/net/tcp"), 16u << 20);
    if (!table) continue;  // no IPv6 in that namespace
    for (auto& [inode, connection] : parseProcNetTcp(*table, ipv6)) {
      if (sockets.count(inode) != 0) out.push_back(std::move(connection));
    }
  }
  return out;
}

}  // namespace rnotify
