// Loading and querying the client configuration; see config.h for the format.
#include "mounts/config.h"

#include <pwd.h>
#include <strings.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>
#include <tuple>

#include "common/host_port.h"

namespace rnotify {
namespace {

// One file's contents; agent stays unset when the file does not name one, so
// that a user file without it does not undo the system file's choice.
struct ConfigLayer {
  std::optional<std::string> agent;
  std::optional<int> echoWindowMs;
  std::optional<int> echoHoldMs;
  std::optional<DedupMode> dedup;
  std::optional<int> pollIntervalMs, pollMinMs, pollMaxMs;
  std::optional<int> keepaliveMs;
  std::optional<std::string> smbCredentials;
  std::vector<ServerEntry> servers;
};

void applyPollAndSmb(const ConfigLayer& layer, Config& config) {
  if (layer.pollIntervalMs) config.pollIntervalMs = *layer.pollIntervalMs;
  if (layer.pollMinMs) config.pollMinMs = *layer.pollMinMs;
  if (layer.pollMaxMs) config.pollMaxMs = *layer.pollMaxMs;
  if (layer.keepaliveMs) config.keepaliveMs = *layer.keepaliveMs;
  if (layer.smbCredentials) config.smbCredentials = *layer.smbCredentials;
}

Result<int> parseMilliseconds(std::string_view what, std::string_view text) {
  std::string value(text);
  char* end = nullptr;
  long ms = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || ms < 0 || ms > 600000) {
    return Error{EINVAL, std::string(what) + "='" + value + "' is not a whole number of milliseconds from 0 to 600000"};
  }
  return static_cast<int>(ms);
}

Error configError(std::string_view origin, const toml::source_region& where, const std::string& what) {
  std::string at(origin);
  if (where.begin.line > 0) at += ":" + std::to_string(where.begin.line);
  return Error{EINVAL, at + ": " + what};
}

Result<std::string> stringValue(std::string_view origin, const toml::node& node, const std::string& key) {
  if (const auto* s = node.as_string()) return s->get();
  return configError(origin, node.source(), "'" + key + "' must be a string (in double quotes)");
}

// "~/x" is $HOME/x; anything else as written.
std::string expandHome(const std::string& path) {
  if (path.rfind("~/", 0) != 0) return path;
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0') {
    if (const passwd* pw = ::getpwuid(::getuid()); pw != nullptr && pw->pw_dir != nullptr) home = pw->pw_dir;
  }
  return home == nullptr ? path : std::string(home) + path.substr(1);
}

// The TLS keys of a [[server]] entry; false if `name` is not one.
Result<bool> parseTlsKey(const std::string& name, const std::string& value, TlsSettings& tls) {
  if (name == "tls_ca") {
    tls.ca = expandHome(value);
  } else if (name == "tls_fingerprint") {
    Result<std::string> fingerprint = normalizeFingerprint(value);
    if (!fingerprint.ok()) return fingerprint.error();
    tls.fingerprint = *fingerprint;
  } else if (name == "tls_cert") {
    tls.cert = expandHome(value);
  } else if (name == "tls_key") {
    tls.key = expandHome(value);
  } else if (name == "token_file") {
    tls.tokenFile = expandHome(value);
  } else if (name == "token_user") {
    tls.tokenUser = value;
  } else {
    return false;
  }
  return true;
}

// What a tls: endpoint needs, and that other endpoints have no TLS keys.
std::string tlsProblem(const ServerEntry& entry) {
  const TlsSettings& tls = entry.tls;
  bool any = !tls.ca.empty() || !tls.fingerprint.empty() || !tls.cert.empty() || !tls.key.empty() ||
             !tls.tokenFile.empty() || !tls.tokenUser.empty();
  if (entry.endpoint.rfind("tls:", 0) != 0) {
    return any ? "tls_* and token_* keys apply to tls: endpoints only, not to '" + entry.endpoint + "'" : "";
  }
  if (tls.ca.empty() && tls.fingerprint.empty()) {
    return "[[server]] with a tls: endpoint needs tls_ca (the CA that signed the server's certificate) or "
           "tls_fingerprint (its SHA-256 fingerprint) to verify the server";
  }
  if (tls.cert.empty() != tls.key.empty()) return "tls_cert and tls_key go together";
  if (tls.cert.empty() && tls.tokenFile.empty()) {
    return "[[server]] with a tls: endpoint needs tls_cert and tls_key, or token_file, for the server to know "
           "who you are";
  }
  if (!tls.tokenUser.empty() && tls.tokenFile.empty()) return "token_user needs token_file";
  return "";
}

Result<ServerEntry> parseServer(std::string_view origin, const toml::table& table) {
  ServerEntry entry;
  for (const auto& [key, node] : table) {
    std::string name(key.str());
    Result<std::string> value = stringValue(origin, node, name);
    if (!value.ok()) return value.error();
    Result<bool> tlsKey = parseTlsKey(name, *value, entry.tls);
    if (!tlsKey.ok()) return configError(origin, node.source(), tlsKey.error().message);
    if (*tlsKey) continue;
    if (name == "match") {
      entry.match = *value;
    } else if (name == "endpoint") {
      if (Status ok = checkEndpoint(*value); !ok.ok()) return configError(origin, node.source(), ok.error().message);
      entry.endpoint = *value;
    } else if (name == "remote_root") {
      entry.remoteRoot = *value;
    } else {
      return configError(origin, key.source(),
                         "unknown key '" + name +
                             "' in [[server]]; known keys: match, endpoint, remote_root, tls_ca, tls_fingerprint, "
                             "tls_cert, tls_key, token_file, token_user");
    }
  }
  if (entry.match.empty() || entry.endpoint.empty()) {
    return configError(origin, table.source(), "[[server]] needs both 'match' and 'endpoint'");
  }
  if (std::string problem = tlsProblem(entry); !problem.empty()) return configError(origin, table.source(), problem);
  return entry;
}

Result<ConfigLayer> parseLayer(std::string_view text, std::string_view origin) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    return configError(origin, e.source(), std::string(e.description()));
  }
  ConfigLayer layer;
  for (const auto& [key, node] : root) {
    std::string name(key.str());
    if (name == "agent") {
      Result<std::string> value = stringValue(origin, node, name);
      if (!value.ok()) return value.error();
      if (value->find_first_not_of(" \t") == std::string::npos) {
        return configError(origin, node.source(), "'agent' is empty; name the command to run on the ssh server");
      }
      layer.agent = *value;
    } else if (name == "echo_window_ms") {
      const auto* number = node.as_integer();
      if (number == nullptr || number->get() < 0 || number->get() > 600000) {
        return configError(origin, node.source(),
                           "'echo_window_ms' must be a whole number of milliseconds, 0 to 600000");
      }
      layer.echoWindowMs = static_cast<int>(number->get());
    } else if (name == "echo_hold_ms") {
      const auto* number = node.as_integer();
      if (number == nullptr || number->get() < 0 || number->get() > 600000) {
        return configError(origin, node.source(), "'echo_hold_ms' must be a whole number of milliseconds, 0 to 600000");
      }
      layer.echoHoldMs = static_cast<int>(number->get());
    } else if (name == "poll_interval_ms" || name == "poll_min_ms" || name == "poll_max_ms") {
      const auto* number = node.as_integer();
      if (number == nullptr || number->get() < 50 || number->get() > 600000) {
        return configError(origin, node.source(),
                           "'" + name + "' must be a whole number of milliseconds, 50 to 600000");
      }
      int ms = static_cast<int>(number->get());
      (name == "poll_interval_ms" ? layer.pollIntervalMs
       : name == "poll_min_ms"    ? layer.pollMinMs
                                  : layer.pollMaxMs) = ms;
    } else if (name == "keepalive_ms") {
      const auto* number = node.as_integer();
      if (number == nullptr || number->get() < kMinKeepaliveMs || number->get() > kMaxKeepaliveMs) {
        return configError(origin, node.source(),
                           "'keepalive_ms' must be a whole number of milliseconds, " + std::to_string(kMinKeepaliveMs) +
                               " to " + std::to_string(kMaxKeepaliveMs));
      }
      layer.keepaliveMs = static_cast<int>(number->get());
    } else if (name == "smb_credentials") {
      Result<std::string> value = stringValue(origin, node, name);
      if (!value.ok()) return value.error();
      layer.smbCredentials = expandHome(*value);
    } else if (name == "dedup") {
      Result<std::string> value = stringValue(origin, node, name);
      if (!value.ok()) return value.error();
      Result<DedupMode> mode = parseDedupMode(*value);
      if (!mode.ok()) return configError(origin, node.source(), mode.error().message);
      layer.dedup = *mode;
    } else if (name == "server") {
      const toml::array* servers = node.as_array();
      if (servers == nullptr)
        return configError(origin, node.source(), "'server' must be written as [[server]] tables");
      for (const toml::node& item : *servers) {
        const toml::table* table = item.as_table();
        if (table == nullptr) return configError(origin, item.source(), "each 'server' must be a [[server]] table");
        Result<ServerEntry> entry = parseServer(origin, *table);
        if (!entry.ok()) return entry.error();
        layer.servers.push_back(*entry);
      }
    } else {
      return configError(
          origin, key.source(),
          "unknown key '" + name +
              "'; known keys: agent, dedup, echo_window_ms, echo_hold_ms, keepalive_ms, poll_interval_ms, "
              "poll_min_ms, poll_max_ms, smb_credentials, [[server]]");
    }
  }
  return layer;
}

// The file's text; nullopt if it does not exist; an error if it exists but
// cannot be read.
Result<std::optional<std::string>> readConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    int code = errno;
    if (code == ENOENT || code == ENOTDIR) return std::optional<std::string>();
    return Error::fromErrno(code, "cannot read rnotify config '" + path + "'; fix its permissions or remove it");
  }
  std::ostringstream text;
  text << in.rdbuf();
  return std::optional<std::string>(text.str());
}

std::string trimTrailingSlashes(std::string_view text) {
  std::string out(text);
  while (out.size() > 1 && out.back() == '/' && out[out.size() - 2] != ':' && out[out.size() - 2] != '/')
    out.pop_back();
  return out;
}

bool matchesSource(const std::string& match, const std::string& source) {
  if (match.empty() || source.compare(0, match.size(), match) != 0) return false;
  if (source.size() == match.size()) return true;
  char last = match.back();
  return last == '/' || last == ':' || source[match.size()] == '/';
}

bool endsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

std::string joinPath(std::string base, std::string_view tail) {
  while (!tail.empty() && tail.front() == '/') tail.remove_prefix(1);
  if (tail.empty()) return base;
  if (base.empty()) return std::string(tail);
  if (base.back() != '/') base += '/';
  return base + std::string(tail);
}

}  // namespace

Status checkEndpoint(std::string_view endpoint) {
  std::string quoted = "endpoint '" + std::string(endpoint) + "'";
  if (endpoint.substr(0, 5) == "unix:") {
    std::string_view path = endpoint.substr(5);
    if (path.empty() || (path[0] != '/' && path[0] != '@')) {
      return Error{EINVAL, quoted + " needs an absolute socket path, e.g. unix:/run/rnotifyd.sock"};
    }
    return {};
  }
  if (endpoint.substr(0, 4) == "tcp:" || endpoint.substr(0, 4) == "tls:") {
    std::string host;
    int port = -1;
    // A port is required, so an IPv6 address needs its brackets.
    const bool ok =
        splitHostPort(endpoint.substr(4), &host, &port) && port > 0 && host.find_first_of("[]/ ") == std::string::npos;
    if (!ok) {
      return Error{EINVAL, quoted + " is not " + std::string(endpoint.substr(0, 3)) +
                               ":HOST:PORT (port 1-65535; IPv6 as tcp:[::1]:7311)"};
    }
    return {};
  }
  return Error{EINVAL, quoted + " must start with 'unix:' or 'tcp:' (plain), or 'tls:'"};
}

Result<std::string> normalizeFingerprint(std::string_view text) {
  if (text.size() > 7 && strncasecmp(text.data(), "SHA256:", 7) == 0) text.remove_prefix(7);
  std::string out;
  for (char c : text) {
    if (c == ':') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c))) {
      return Error{EINVAL, "tls_fingerprint '" + std::string(text) + "' is not hex digits"};
    }
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  if (out.size() != 64) {
    return Error{EINVAL,
                 "tls_fingerprint must be a SHA-256 fingerprint (64 hex digits, colons allowed), as "
                 "'openssl x509 -noout -fingerprint -sha256 -in server.pem' prints it"};
  }
  return out;
}

Result<Config> parseConfig(std::string_view tomlText, std::string_view origin) {
  Result<ConfigLayer> layer = parseLayer(tomlText, origin);
  if (!layer.ok()) return layer.error();
  Config config;
  if (layer->agent) config.agent = *layer->agent;
  if (layer->echoWindowMs) config.echoWindowMs = *layer->echoWindowMs;
  if (layer->echoHoldMs) config.echoHoldMs = *layer->echoHoldMs;
  if (layer->dedup) config.dedup = *layer->dedup;
  applyPollAndSmb(*layer, config);
  config.servers = std::move(layer->servers);
  config.origin = std::string(origin);
  return config;
}

ConfigSources configSourcesFromEnvironment() {
  auto env = [](const char* name) {
    const char* value = std::getenv(name);
    return std::string(value == nullptr ? "" : value);
  };
  ConfigSources sources;
  sources.explicitFile = env("RNOTIFY_CONFIG");
  sources.agentOverride = env("RNOTIFY_AGENT");
  sources.echoWindowOverride = env("RNOTIFY_ECHO_WINDOW_MS");
  sources.echoHoldOverride = env("RNOTIFY_ECHO_HOLD_MS");
  sources.dedupOverride = env("RNOTIFY_DEDUP");
  sources.pollIntervalOverride = env("RNOTIFY_POLL_INTERVAL_MS");
  sources.pollMinOverride = env("RNOTIFY_POLL_MIN_MS");
  sources.pollMaxOverride = env("RNOTIFY_POLL_MAX_MS");
  sources.keepaliveOverride = env("RNOTIFY_KEEPALIVE_MS");
  sources.systemFile = "/etc/rnotify/config.toml";
  std::string xdg = env("XDG_CONFIG_HOME");
  std::string home = env("HOME");
  if (home.empty()) {
    if (const passwd* pw = ::getpwuid(::getuid()); pw != nullptr && pw->pw_dir != nullptr) home = pw->pw_dir;
  }
  // The XDG spec says a relative XDG_CONFIG_HOME is invalid and to be ignored.
  if (!xdg.empty() && xdg[0] == '/') {
    sources.userFile = xdg + "/rnotify/config.toml";
  } else if (!home.empty()) {
    sources.userFile = home + "/.config/rnotify/config.toml";
  }
  return sources;
}

Result<Config> loadConfig() { return loadConfig(configSourcesFromEnvironment()); }

Result<Config> loadConfig(const ConfigSources& sources) {
  Config config;
  if (!sources.explicitFile.empty()) {
    Result<std::optional<std::string>> text = readConfigFile(sources.explicitFile);
    if (!text.ok()) return text.error();
    if (!text.value()) {
      return Error{ENOENT, "RNOTIFY_CONFIG names '" + sources.explicitFile +
                               "', which does not exist; create it or unset RNOTIFY_CONFIG"};
    }
    Result<Config> parsed = parseConfig(**text, sources.explicitFile);
    if (!parsed.ok()) return parsed;
    config = std::move(parsed.value());
  } else {
    std::vector<std::string> used;
    std::optional<std::string> agent;
    std::optional<int> echoWindowMs;
    std::optional<int> echoHoldMs;
    std::optional<DedupMode> dedup;
    ConfigLayer poll;  // its poll and smb keys, the user's winning
    // User first, so that its agent wins and its servers come first.
    for (const std::string& path : {sources.userFile, sources.systemFile}) {
      if (path.empty()) continue;
      Result<std::optional<std::string>> text = readConfigFile(path);
      if (!text.ok()) return text.error();
      if (!text.value()) continue;
      Result<ConfigLayer> layer = parseLayer(**text, path);
      if (!layer.ok()) return layer.error();
      if (!agent) agent = layer->agent;
      if (!echoWindowMs) echoWindowMs = layer->echoWindowMs;
      if (!echoHoldMs) echoHoldMs = layer->echoHoldMs;
      if (!dedup) dedup = layer->dedup;
      if (!poll.pollIntervalMs) poll.pollIntervalMs = layer->pollIntervalMs;
      if (!poll.pollMinMs) poll.pollMinMs = layer->pollMinMs;
      if (!poll.pollMaxMs) poll.pollMaxMs = layer->pollMaxMs;
      if (!poll.keepaliveMs) poll.keepaliveMs = layer->keepaliveMs;
      if (!poll.smbCredentials) poll.smbCredentials = layer->smbCredentials;
      config.servers.insert(config.servers.end(), layer->servers.begin(), layer->servers.end());
      used.push_back(path);
    }
    if (agent) config.agent = *agent;
    if (echoWindowMs) config.echoWindowMs = *echoWindowMs;
    if (echoHoldMs) config.echoHoldMs = *echoHoldMs;
    if (dedup) config.dedup = *dedup;
    applyPollAndSmb(poll, config);
    for (const std::string& path : used) config.origin += (config.origin.empty() ? "" : " over ") + path;
    if (config.origin.empty()) config.origin = "built-in defaults";
  }
  if (!sources.agentOverride.empty()) {
    config.agent = sources.agentOverride;
    config.origin += " (agent from RNOTIFY_AGENT)";
  }
  if (!sources.echoWindowOverride.empty()) {
    char* end = nullptr;
    long ms = std::strtol(sources.echoWindowOverride.c_str(), &end, 10);
    if (*end != '\0' || ms < 0 || ms > 600000) {
      return Error{EINVAL, "RNOTIFY_ECHO_WINDOW_MS='" + sources.echoWindowOverride +
                               "' is not a whole number of milliseconds from 0 to 600000"};
    }
    config.echoWindowMs = static_cast<int>(ms);
  }
  if (!sources.echoHoldOverride.empty()) {
    Result<int> ms = parseMilliseconds("RNOTIFY_ECHO_HOLD_MS", sources.echoHoldOverride);
    if (!ms.ok()) return ms.error();
    config.echoHoldMs = *ms;
  }
  for (auto [value, name, field] :
       {std::tuple{&sources.pollIntervalOverride, "RNOTIFY_POLL_INTERVAL_MS", &config.pollIntervalMs},
        std::tuple{&sources.pollMinOverride, "RNOTIFY_POLL_MIN_MS", &config.pollMinMs},
        std::tuple{&sources.pollMaxOverride, "RNOTIFY_POLL_MAX_MS", &config.pollMaxMs}}) {
    if (value->empty()) continue;
    Result<int> ms = parseMilliseconds(name, *value);
    if (!ms.ok()) return ms.error();
    *field = std::max(*ms, 50);
  }
  if (!sources.keepaliveOverride.empty()) {
    Result<int> ms = parseMilliseconds("RNOTIFY_KEEPALIVE_MS", sources.keepaliveOverride);
    if (!ms.ok()) return ms.error();
    config.keepaliveMs = std::clamp(*ms, kMinKeepaliveMs, kMaxKeepaliveMs);
  }
  if (config.pollMinMs > config.pollIntervalMs || config.pollIntervalMs > config.pollMaxMs) {
    return Error{EINVAL, "polling intervals must satisfy poll_min_ms (" + std::to_string(config.pollMinMs) +
                             ") <= poll_interval_ms (" + std::to_string(config.pollIntervalMs) + ") <= poll_max_ms (" +
                             std::to_string(config.pollMaxMs) + ")"};
  }
  if (!sources.dedupOverride.empty()) {
    Result<DedupMode> mode = parseDedupMode(sources.dedupOverride);
    if (!mode.ok()) return Error{EINVAL, "RNOTIFY_DEDUP: " + mode.error().message};
    config.dedup = *mode;
  }
  return config;
}

const char* dedupModeName(DedupMode mode) {
  switch (mode) {
    case DedupMode::kAuto:
      return "auto";
    case DedupMode::kOrigin:
      return "origin";
    case DedupMode::kState:
      return "state";
    case DedupMode::kEcho:
      return "echo";
    case DedupMode::kOff:
      return "off";
  }
  return "auto";
}

Result<DedupMode> parseDedupMode(std::string_view text) {
  for (DedupMode mode : {DedupMode::kAuto, DedupMode::kOrigin, DedupMode::kState, DedupMode::kEcho, DedupMode::kOff}) {
    if (text == dedupModeName(mode)) return mode;
  }
  return Error{EINVAL,
               "'" + std::string(text) + "' is not a de-duplication mode; use auto, origin, state, echo or off"};
}

const ServerEntry* findServer(const Config& config, const MountInfo& mount) {
  std::string source = trimTrailingSlashes(mount.source);
  const ServerEntry* best = nullptr;
  size_t bestLength = 0;
  for (const ServerEntry& entry : config.servers) {
    std::string match = trimTrailingSlashes(entry.match);
    if (matchesSource(match, source) && (best == nullptr || match.size() > bestLength)) {
      best = &entry;
      bestLength = match.size();
    }
  }
  return best;
}

std::string serverPathFor(const ServerEntry& entry, const MountInfo& mount, const std::string& relative) {
  std::string source = trimTrailingSlashes(mount.source);
  std::string match = trimTrailingSlashes(entry.match);
  std::string below = matchesSource(match, source) ? source.substr(match.size()) : "";
  std::string sourcePath = below;
  std::string base;
  size_t colon = source.find(':');
  if (!entry.remoteRoot.empty()) {
    base = joinPath(entry.remoteRoot, below);
  } else if (source.rfind("//", 0) != 0 && colon != std::string::npos) {
    base = source.substr(colon + 1);  // NFS: the export path as the server names it
    sourcePath = base;
  } else if (size_t share = source.find('/', 2); source.rfind("//", 0) == 0 && share != std::string::npos) {
    base = source.substr(share);  // SMB: "/share/sub" of //host/share/sub
    sourcePath = base;
  } else {
    base = below.empty() ? "/" : below;
  }
  // NFS always shows root "/" (the source already names the subdirectory);
  // a bind mount of a subdirectory of a cifs mount shows it only in root.
  if (!mount.root.empty() && mount.root != "/" && !endsWith(sourcePath, mount.root)) base = joinPath(base, mount.root);
  return joinPath(base, relative);
}

}  // namespace rnotify
