// Config: which rnotifyd serves which NFS/SMB mount, and which agent command to
// run over ssh for sshfs mounts. sshfs needs no configuration (the mount's own
// ssh connection says where the server is); for NFS and SMB the mount source
// ("nas:/export", "//nas/share") does not say where an rnotifyd listens, nor
// where the export lives in the server's filesystem, so the user writes it down:
//
//   agent = "rnotifyd --stdio"          # run on the ssh server
//   [[server]]
//   match = "nas:/export"               # mount source prefix
//   endpoint = "tls:nas:7311"           # or "unix:/run/rnotifyd.sock", "tcp:127.0.0.1:7311"
//   remote_root = "/srv/export"         # server path of the source's root (default: rnotifyd maps it)
//   tls_ca = "/etc/rnotify/ca.pem"      # tls: the server's CA, and/or tls_fingerprint = "SHA256:..."
//   tls_cert = "~/.config/rnotify/me.pem"   # a client certificate and key, or token_file (+ token_user)
//   tls_key = "~/.config/rnotify/me.key"
//
// Files: $RNOTIFY_CONFIG alone if set; else the user's file layered over
// /etc/rnotify/config.toml. RNOTIFY_AGENT overrides agent.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "mounts/mount_resolver.h"
#include "mounts/tls_settings.h"

namespace rnotify {

struct ServerEntry {
  std::string match;     // mount source prefix this entry serves, e.g. "nas:/export" or "//nas/share"
  std::string endpoint;  // "unix:/run/rnotifyd.sock", "tls:host:port" or "tcp:host:port"
  // Server path of the mount source's root. Default: the path the mount
  // names, the source's (NFS) or /share (SMB), mapped by rnotifyd.
  std::string remoteRoot;
  TlsSettings tls = {};  // tls_ca, tls_fingerprint, tls_cert, tls_key, token_file, token_user (tls: endpoints)
};

// How the client avoids reporting its own changes twice (docs/ARCHITECTURE.md,
// "One change, one event"): kAuto picks per watch the best the server offers.
enum class DedupMode { kAuto, kOrigin, kState, kEcho, kOff };
const char* dedupModeName(DedupMode mode);
Result<DedupMode> parseDedupMode(std::string_view text);

// The server may drop a client that promised keepalives and sent nothing for
// 30 s: pings are never further apart than proto::kKeepaliveMaxIntervalSeconds.
inline constexpr int kMinKeepaliveMs = 100;
inline constexpr int kMaxKeepaliveMs = 10000;

struct Config {
  std::string agent = "rnotifyd --stdio";  // command run on the ssh server
  int echoWindowMs = 2000;                 // echo_window_ms: how long a change waits for its echo; 0: no matching
  int echoHoldMs = 250;                    // echo_hold_ms: how long a local change is held for the server's copy
  DedupMode dedup = DedupMode::kAuto;      // dedup = "auto" | "origin" | "state" | "echo" | "off"
  // Polling, for mounts no server helps with (client/poll_interval.h): the
  // interval between scans, the shortest (right after a change) and the
  // longest (after a minute without one).
  int pollIntervalMs = 2000;  // poll_interval_ms
  int pollMinMs = 250;        // poll_min_ms
  int pollMaxMs = 5000;       // poll_max_ms
  // keepalive_ms: liveness of server connections (proto::kCapKeepalive): a
  // Ping after this long without sending, and the connection is lost after
  // three times this without anything received.
  int keepaliveMs = 2000;
  // smb_credentials: a file as cifs's credentials= takes (username=,
  // password=, domain=), for SMB2 change notify on cifs mounts. Default:
  // ~/.config/rnotify/smb-credentials when it exists.
  std::string smbCredentials;
  std::vector<ServerEntry> servers;  // [[server]] tables
  std::string origin;                // which file(s) it came from, for messages
};

// Parses TOML text. Keys: agent = "...", echo_window_ms = N, echo_hold_ms = N,
// dedup = "auto|origin|state|echo|off", poll_interval_ms/poll_min_ms/poll_max_ms
// = N (50 to 600000), keepalive_ms = N (100 to 10000), smb_credentials = "path", [[server]] match/endpoint/remote_root
// and, for tls: endpoints, tls_ca/tls_fingerprint (at least one), tls_cert
// with tls_key, token_file, token_user; paths may start with "~/".
// Unknown keys, wrong types, a missing match/endpoint, a bad endpoint or
// fingerprint, TLS keys on a non-tls: endpoint are errors naming the file,
// the line and the key.
Result<Config> parseConfig(std::string_view tomlText, std::string_view origin);

// Checks "unix:/abs/path", "tcp:host:port" or "tls:host:port"
// ("tcp:[::1]:7311"); an error saying what is wrong otherwise.
Status checkEndpoint(std::string_view endpoint);

// tls_fingerprint: "SHA256:AB:CD..." or "abcd..." (64 hex digits, colons
// allowed) as 64 lowercase hex digits; an error if it is not one.
Result<std::string> normalizeFingerprint(std::string_view text);

// Where loadConfig() looks; configSourcesFromEnvironment() fills it from the
// environment, tests fill it themselves.
struct ConfigSources {
  std::string explicitFile;          // $RNOTIFY_CONFIG: used alone, must exist
  std::string userFile;              // $XDG_CONFIG_HOME/rnotify/config.toml or ~/.config/rnotify/config.toml
  std::string systemFile;            // /etc/rnotify/config.toml
  std::string agentOverride;         // $RNOTIFY_AGENT
  std::string echoWindowOverride;    // $RNOTIFY_ECHO_WINDOW_MS
  std::string echoHoldOverride;      // $RNOTIFY_ECHO_HOLD_MS
  std::string dedupOverride;         // $RNOTIFY_DEDUP
  std::string pollIntervalOverride;  // $RNOTIFY_POLL_INTERVAL_MS
  std::string pollMinOverride;       // $RNOTIFY_POLL_MIN_MS
  std::string pollMaxOverride;       // $RNOTIFY_POLL_MAX_MS
  std::string keepaliveOverride;     // $RNOTIFY_KEEPALIVE_MS
};
ConfigSources configSourcesFromEnvironment();

// Loads $RNOTIFY_CONFIG if set (must exist), else the user file layered over
// the system file (user values win; server lists concatenated, user first);
// missing files are fine; then RNOTIFY_AGENT (if set and non-empty) overrides agent.
Result<Config> loadConfig();
Result<Config> loadConfig(const ConfigSources& sources);

// The entry serving a mount (longest match prefix on the source, ending at a
// path boundary), or nullptr.
const ServerEntry* findServer(const Config& config, const MountInfo& mount);

// Server path for a path inside an NFS/SMB mount via its entry: remoteRoot +
// the part of the source below match + the mount's root (when a bind mount of
// a subdirectory shows it there and not in the source) + relative. Without
// remote_root, the path as the NFS or SMB client names it instead ("/nfs/w"
// of nas:/nfs, "/share/w" of //nas/share), which rnotifyd maps onto its
// exports (proto::kWatchExportPath).
std::string serverPathFor(const ServerEntry& entry, const MountInfo& mount, const std::string& relative);

}  // namespace rnotify
