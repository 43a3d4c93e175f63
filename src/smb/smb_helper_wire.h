// The packets between SmbNotify (the library) and rnotify-smb-helper, one
// per SOCK_SEQPACKET packet on the helper's descriptor 3:
//   parent -> helper, once, first: 'C', then server, share, path, user,
//     password, domain (each u32 length + bytes), u32 port, u32 mask,
//     u32 recursive (0 or 1), u32 log level (log::Level). The password
//     travels here, never on argv.
//   helper -> parent: 'R' (the first notify request is out), 'E' u32 mask
//     u32 cookie u32 length-of-dir dir name (an event), 'X' u32 errno
//     message (the watch failed or could not start; the helper then ends).
// The helper leaves by itself when the parent's end closes.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "smb/smb_credentials.h"

namespace rnotify::smbwire {

inline constexpr char kConfig = 'C';
inline constexpr char kReady = 'R';
inline constexpr char kEvent = 'E';
inline constexpr char kError = 'X';
inline constexpr size_t kMaxMessage = 64 * 1024;

inline void appendU32(std::string* m, uint32_t v) { m->append(reinterpret_cast<const char*>(&v), sizeof v); }
inline void appendString(std::string* m, std::string_view s) {
  appendU32(m, static_cast<uint32_t>(s.size()));
  m->append(s);
}
inline uint32_t readU32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

struct HelperConfig {
  SmbLocation location;
  SmbCredentials credentials;
  uint32_t mask = 0;
  bool recursive = false;
  uint32_t logLevel = 2;  // log::Level
};

inline std::string encodeConfig(const HelperConfig& c) {
  std::string m(1, kConfig);
  for (const std::string* s : {&c.location.server, &c.location.share, &c.location.path, &c.credentials.user,
                               &c.credentials.password, &c.credentials.domain}) {
    appendString(&m, *s);
  }
  appendU32(&m, static_cast<uint32_t>(c.location.port));
  appendU32(&m, c.mask);
  appendU32(&m, c.recursive ? 1 : 0);
  appendU32(&m, c.logLevel);
  return m;
}

// nullopt for anything but one whole, well-formed config packet.
inline std::optional<HelperConfig> decodeConfig(std::string_view m) {
  if (m.empty() || m[0] != kConfig) return std::nullopt;
  m.remove_prefix(1);
  HelperConfig c;
  for (std::string* s : {&c.location.server, &c.location.share, &c.location.path, &c.credentials.user,
                         &c.credentials.password, &c.credentials.domain}) {
    if (m.size() < 4) return std::nullopt;
    const uint32_t n = readU32(m.data());
    m.remove_prefix(4);
    if (n > m.size()) return std::nullopt;
    s->assign(m.substr(0, n));
    m.remove_prefix(n);
  }
  if (m.size() != 16) return std::nullopt;
  c.location.port = static_cast<int>(readU32(m.data()));
  c.mask = readU32(m.data() + 4);
  const uint32_t recursive = readU32(m.data() + 8);
  if (recursive > 1) return std::nullopt;
  c.recursive = recursive == 1;
  c.logLevel = readU32(m.data() + 12);
  return c;
}

}  // namespace rnotify::smbwire
