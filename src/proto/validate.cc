// Sender-side checks: the rules decode enforces, applied before encoding, so
// that a bad value (a client's over-long path, a name with '/') becomes an
// error for its caller instead of a protocol error that closes the connection.
// Over-long paths and names give ENAMETOOLONG, everything else EINVAL.
#include <cerrno>
#include <type_traits>

#include "proto/codec.h"
#include "proto/field_checks.h"

namespace rnotify::proto {
namespace {

constexpr size_t kMaxText = 0xffff;

Status check(std::string_view what, const std::string& problem, int code = EINVAL) {
  if (problem.empty()) return {};
  return Error{code, "cannot send " + std::string(what) + ": " + problem};
}

Status checkText(std::string_view what, std::string_view field, std::string_view s) {
  return check(what, stringProblem(field, s, kMaxText));
}

Status checkPath(std::string_view what, std::string_view field, std::string_view s, size_t limit) {
  return check(what, stringProblem(field, s, limit), s.size() > limit ? ENAMETOOLONG : EINVAL);
}

}  // namespace

Status validate(const Event& ev) {
  if (Status s = checkPath("event", "dir", ev.dir, kMaxPath); !s) return s;
  if (Status s = checkPath("event", "name", ev.name, kMaxName); !s) return s;
  if (Status s = check("event", dirProblem(ev.dir)); !s) return s;
  if (static_cast<uint8_t>(ev.origin) > static_cast<uint8_t>(Origin::kSelf)) return check("event", "bad origin");
  if (ev.hasStat && ev.stat.mtimeNsec >= 1000000000u) return check("event", "mtimeNsec not below 1e9");
  return check("event", nameProblem(ev.name));
}

Status validate(const Message& msg) {
  return std::visit(
      [](const auto& m) -> Status {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, Hello>) {
          if (m.minVersion == 0 || m.minVersion > m.maxVersion) return check("Hello", "empty version range");
          return checkText("Hello", "clientName", m.clientName);
        } else if constexpr (std::is_same_v<T, Welcome>) {
          if (m.version == 0) return check("Welcome", "version 0");
          if (m.maxFrame < kMinMaxFrame) return check("Welcome", "maxFrame below " + std::to_string(kMinMaxFrame));
          return checkText("Welcome", "serverName", m.serverName);
        } else if constexpr (std::is_same_v<T, Watch>) {
          return checkPath("Watch", "path", m.path, kMaxPath);
        } else if constexpr (std::is_same_v<T, Reply>) {
          if (m.status < 0) return check("Reply", "negative status");
          return checkText("Reply", "message", m.message);
        } else if constexpr (std::is_same_v<T, Declare>) {
          if (m.origins.size() > kMaxDeclared) {
            return check("Declare", "more than " + std::to_string(kMaxDeclared) + " origins");
          }
          for (const std::string& origin : m.origins) {
            if (origin.empty()) return check("Declare", "an empty origin");
            if (Status s = checkText("Declare", "origin", origin); !s) return s;
            if (origin.size() > kMaxOriginText) return check("Declare", "an origin over 255 bytes");
          }
          return {};
        } else if constexpr (std::is_same_v<T, Attach>) {
          if (m.token[0] == 0 && m.token[1] == 0) return check("Attach", "a zero token");
          if (m.positions.size() > kMaxPositions) return check("Attach", "too many positions");
          if (m.instanceId == 0 && !m.positions.empty()) return check("Attach", "positions without an instanceId");
          return {};
        } else if constexpr (std::is_same_v<T, Auth>) {
          if (Status s = checkPath("Auth", "user", m.user, kMaxUserName); !s) return s;
          if (Status s = check("Auth", userProblem(m.user)); !s) return s;
          if (m.token.empty()) return check("Auth", "an empty token");
          // The token's bytes are never part of the message: it is a secret.
          if (m.token.size() > kMaxToken || m.token.find('\0') != std::string::npos) {
            return check("Auth", "a token that is over " + std::to_string(kMaxToken) + " bytes or contains NUL");
          }
          return {};
        } else if constexpr (std::is_same_v<T, Ack>) {
          if (m.positions.size() > kMaxPositions) return check("Ack", "too many positions");
          return {};
        } else if constexpr (std::is_same_v<T, Entries>) {
          for (const TreeEntry& e : m.entries) {
            if (Status s = checkPath("Entries", "dir", e.dir, kMaxPath); !s) return s;
            if (Status s = checkPath("Entries", "name", e.name, kMaxName); !s) return s;
            if (Status s = check("Entries", dirProblem(e.dir)); !s) return s;
            if (Status s = check("Entries", nameProblem(e.name)); !s) return s;
            if (e.name.empty()) return check("Entries", "an empty name");
            if (e.stat.mtimeNsec >= 1000000000u) return check("Entries", "mtimeNsec not below 1e9");
          }
          return {};
        } else if constexpr (std::is_same_v<T, Events>) {
          for (const Event& ev : m.events) {
            if (Status s = validate(ev); !s) return s;
          }
          return {};
        } else if constexpr (std::is_same_v<T, Fatal>) {
          if (m.code < 0) return check("Fatal", "negative code");
          return checkText("Fatal", "message", m.message);
        } else {
          return {};  // Unwatch, Ping, Pong: every value is valid
        }
      },
      msg);
}

}  // namespace rnotify::proto
