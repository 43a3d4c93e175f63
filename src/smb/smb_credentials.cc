// SmbLocation and SmbCredentials parsing; see smb_credentials.h.
#include "smb/smb_credentials.h"

#include <fcntl.h>
#include <fmt/core.h>
#include <sys/stat.h>

#include <charconv>

#include "common/host_port.h"
#include "common/unique_fd.h"

namespace rnotify {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

Error invalid(std::string message) { return Error{EINVAL, std::move(message)}; }

// "a//b/" -> "a/b"; false if a component is "." or "..", which a share path
// must not contain (they would leave the watched directory).
bool normalisePath(std::string_view in, std::string* out) {
  out->clear();
  size_t i = 0;
  while (i < in.size()) {
    size_t j = in.find('/', i);
    if (j == std::string_view::npos) j = in.size();
    std::string_view part = in.substr(i, j - i);
    if (part == "." || part == "..") return false;
    if (!part.empty()) {
      if (!out->empty()) *out += '/';
      *out += part;
    }
    i = j + 1;
  }
  return true;
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool percentDecode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      *out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return false;
    int hi = hexValue(in[i + 1]), lo = hexValue(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    *out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

std::string percentEncode(std::string_view in, bool keepSlash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : in) {
    auto u = static_cast<unsigned char>(c);
    bool plain = (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '-' || u == '.' ||
                 u == '_' || u == '~' || (keepSlash && u == '/');
    if (plain) {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

// Fills server/share/path from "server/share/rest" (after the leading "//").
Result<SmbLocation> splitServerSharePath(std::string_view rest, int port, std::string_view whole) {
  SmbLocation loc;
  loc.port = port;
  size_t slash = rest.find('/');
  std::string_view hostPort = rest.substr(0, slash);
  if (!splitHostPort(hostPort, &loc.server, &loc.port) || loc.server.empty()) {
    return invalid(fmt::format("'{}': no valid server name (expected //server/share)", whole));
  }
  if (slash == std::string_view::npos) return invalid(fmt::format("'{}': no share (expected //server/share)", whole));
  rest.remove_prefix(slash + 1);
  size_t next = rest.find('/');
  loc.share = std::string(rest.substr(0, next));
  if (loc.share.empty()) return invalid(fmt::format("'{}': no share (expected //server/share)", whole));
  std::string_view path = next == std::string_view::npos ? std::string_view() : rest.substr(next + 1);
  if (!normalisePath(path, &loc.path)) {
    return invalid(fmt::format("'{}': the path may not contain '.' or '..' components", whole));
  }
  return loc;
}

}  // namespace

Result<SmbCredentials> parseCredentials(std::string_view text, const std::string& source) {
  SmbCredentials out;
  size_t lineNo = 0;
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
    ++lineNo;
    // Values keep inner and trailing blanks except CR: a password may end in
    // a space. mount.cifs strips only the line end, so do we.
    while (!line.empty() && (line.back() == '\r')) line.remove_suffix(1);
    std::string_view lead = trim(line);
    if (lead.empty() || lead.front() == '#' || lead.front() == ';') continue;
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) {
      return invalid(fmt::format("{}:{}: expected key=value (username=, password=, domain=)", source, lineNo));
    }
    std::string_view key = trim(line.substr(0, eq));
    std::string value(line.substr(eq + 1));
    if (key == "username" || key == "user") {
      size_t sep = value.find_first_of("/\\");
      if (sep != std::string::npos) {
        out.domain = value.substr(0, sep);
        value.erase(0, sep + 1);
      }
      out.user = value;
    } else if (key == "password" || key == "pass") {
      out.password = value;
    } else if (key == "domain" || key == "dom" || key == "workgroup") {
      out.domain = value;
    } else {
      return invalid(
          fmt::format("{}:{}: unknown key '{}' (expected username=, password=, domain=)", source, lineNo, key));
    }
  }
  if (out.user.empty()) return invalid(fmt::format("{}: no username= line", source));
  return out;
}

Result<SmbCredentials> readCredentialsFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return lastError(fmt::format("open credentials file '{}'", path));
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return lastError(fmt::format("stat credentials file '{}'", path));
  if (!S_ISREG(st.st_mode)) return invalid(fmt::format("credentials file '{}' is not a regular file", path));
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    return Error{EACCES, fmt::format("credentials file '{}' is accessible by group or others (mode {:o}); it holds a "
                                     "password: run chmod 600 '{}'",
                                     path, st.st_mode & 07777, path)};
  }
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return lastError(fmt::format("read credentials file '{}'", path));
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > 64 * 1024) return invalid(fmt::format("credentials file '{}' is too large", path));
  }
  return parseCredentials(text, path);
}

Result<SmbLocation> parseMountSource(std::string_view source, int port) {
  std::string s(source);
  for (char& c : s) {
    if (c == '\\') c = '/';
  }
  if (s.size() < 3 || s[0] != '/' || s[1] != '/') {
    return invalid(fmt::format("'{}' is not a cifs mount source (expected //server/share[/path])", source));
  }
  return splitServerSharePath(std::string_view(s).substr(2), port, source);
}

Result<SmbLocation> parseSmbUrl(std::string_view url, SmbCredentials* credentials) {
  constexpr std::string_view kScheme = "smb://";
  if (url.substr(0, kScheme.size()) != kScheme) {
    return invalid(fmt::format("'{}' is not an smb:// URL (expected smb://[user@]server[:port]/share/path)", url));
  }
  std::string_view rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  size_t at = authority.rfind('@');
  SmbCredentials creds;
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    rest.remove_prefix(at + 1);
    size_t semi = userinfo.find(';');
    if (semi != std::string_view::npos) {
      if (!percentDecode(userinfo.substr(0, semi), &creds.domain))
        return invalid(fmt::format("'{}': bad %-escape", url));
      userinfo.remove_prefix(semi + 1);
    }
    size_t colon = userinfo.find(':');
    if (!percentDecode(userinfo.substr(0, colon), &creds.user)) return invalid(fmt::format("'{}': bad %-escape", url));
    if (colon != std::string_view::npos && !percentDecode(userinfo.substr(colon + 1), &creds.password)) {
      return invalid(fmt::format("'{}': bad %-escape", url));
    }
  }
  std::string decoded;
  if (!percentDecode(rest, &decoded)) return invalid(fmt::format("'{}': bad %-escape", url));
  auto loc = splitServerSharePath(decoded, 0, url);
  if (loc.ok() && credentials != nullptr) *credentials = std::move(creds);
  return loc;
}

std::string smbUrl(const SmbLocation& location) {
  std::string host = location.server.find(':') != std::string::npos ? "[" + location.server + "]" : location.server;
  std::string url = "smb://" + host;
  if (location.port != 0) url += ":" + std::to_string(location.port);
  url += "/" + percentEncode(location.share, false);
  if (!location.path.empty()) url += "/" + percentEncode(location.path, true);
  return url;
}

std::string smbFixHint(int code) {
  switch (code) {
    case EACCES:
    case EPERM:
      return "check the user name and password (credentials file) and the share's permissions";
    case ENOENT:
    case ENODEV:
    case ENOTDIR:
      return "check the share name and the path inside it";
    case ECONNREFUSED:
    case ETIMEDOUT:
    case EHOSTUNREACH:
    case ENETUNREACH:
      return "check that the server runs SMB on that address and port";
    case ECONNABORTED:
    case ECONNRESET:
    case EPIPE:
      return "the connection to the server was lost; the watch must be set up again";
    default:
      return "see the server's log";
  }
}

}  // namespace rnotify
