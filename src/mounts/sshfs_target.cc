// Finding an sshfs mount's ssh settings; see sshfs_target.h for why and how.
#include "mounts/sshfs_target.h"

#include <dirent.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "common/proc_net.h"
#include "common/proc_stat.h"
#include "common/read_file.h"
#include "common/unique_fd.h"

namespace rnotify {
namespace {

// ssh(1) options that take an argument (OpenSSH 9.x getopt string).
constexpr std::string_view kSshArgOptions = "bcDEeFIiJLlmOoPpQRSWwB";
// Options that change what the session does (no command, background, tty,
// stdin from /dev/null, print and exit, stdio forwarding, control command):
// right for sftp or a shell, wrong for the agent.
constexpr std::string_view kDroppedFlags = "sNftTnGV";
constexpr std::string_view kDroppedArgOptions = "WO";
constexpr std::string_view kDroppedConfigKeys[] = {"remotecommand", "requesttty", "sessiontype", "stdinnull",
                                                   "forkafterauthentication"};

// The -o options sshfs passes on to ssh (sshfs.c ssh_opts[], matched case-insensitively).
constexpr std::string_view kSshfsSshOpts[] = {"AddressFamily",
                                              "BatchMode",
                                              "BindAddress",
                                              "BindInterface",
                                              "CertificateFile",
                                              "ChallengeResponseAuthentication",
                                              "CheckHostIP",
                                              "Cipher",
                                              "Ciphers",
                                              "Compression",
                                              "CompressionLevel",
                                              "ConnectionAttempts",
                                              "ConnectTimeout",
                                              "ControlMaster",
                                              "ControlPath",
                                              "ControlPersist",
                                              "FingerprintHash",
                                              "GlobalKnownHostsFile",
                                              "GSSAPIAuthentication",
                                              "GSSAPIDelegateCredentials",
                                              "HostbasedAuthentication",
                                              "HostbasedKeyTypes",
                                              "HostKeyAlgorithms",
                                              "HostKeyAlias",
                                              "HostName",
                                              "IdentitiesOnly",
                                              "IdentityFile",
                                              "IdentityAgent",
                                              "IPQoS",
                                              "KbdInteractiveAuthentication",
                                              "KbdInteractiveDevices",
                                              "KexAlgorithms",
                                              "LocalCommand",
                                              "LogLevel",
                                              "MACs",
                                              "NoHostAuthenticationForLocalhost",
                                              "NumberOfPasswordPrompts",
                                              "PasswordAuthentication",
                                              "PermitLocalCommand",
                                              "PKCS11Provider",
                                              "Port",
                                              "PreferredAuthentications",
                                              "ProxyCommand",
                                              "ProxyJump",
                                              "ProxyUseFdpass",
                                              "PubkeyAcceptedKeyTypes",
                                              "PubkeyAuthentication",
                                              "RekeyLimit",
                                              "RevokedHostKeys",
                                              "RhostsRSAAuthentication",
                                              "RSAAuthentication",
                                              "ServerAliveCountMax",
                                              "ServerAliveInterval",
                                              "SmartcardDevice",
                                              "StrictHostKeyChecking",
                                              "TCPKeepAlive",
                                              "UpdateHostKeys",
                                              "UsePrivilegedPort",
                                              "UserKnownHostsFile",
                                              "VerifyHostKeyDNS",
                                              "VisualHostKey"};

std::string lower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

// "Port=22" and "Port 22" both name the key "port".
std::string configKey(std::string_view option) { return lower(option.substr(0, option.find_first_of("= \t"))); }

bool isDroppedConfig(std::string_view option) {
  std::string key = configKey(option);
  return std::find(std::begin(kDroppedConfigKeys), std::end(kDroppedConfigKeys), key) != std::end(kDroppedConfigKeys);
}

Error invalid(std::string message) { return Error{EINVAL, std::move(message)}; }

std::string joinArgv(const std::vector<std::string>& argv) {
  std::string out;
  for (const std::string& a : argv) out += (out.empty() ? "" : " ") + a;
  return out;
}

std::string basename(std::string_view path) {
  size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

// Splits sshfs/fuse "-o a,b\,c" option lists; "\," is a literal comma.
std::vector<std::string> splitFuseOptions(std::string_view list) {
  std::vector<std::string> out(1);
  for (size_t i = 0; i < list.size(); ++i) {
    if (list[i] == '\\' && i + 1 < list.size()) {
      out.back() += list[++i];
    } else if (list[i] == ',') {
      out.emplace_back();
    } else {
      out.back() += list[i];
    }
  }
  return out;
}

void applySshfsOption(std::string_view option, SshTarget* target) {
  constexpr std::string_view kSshCommand = "ssh_command=";
  if (option.substr(0, kSshCommand.size()) == kSshCommand) {
    std::istringstream words{std::string(option.substr(kSshCommand.size()))};
    std::vector<std::string> extra;
    for (std::string w; words >> w;) extra.push_back(w);
    if (extra.empty()) return;
    target->sshProgram = extra.front();
    target->sshOptions.insert(target->sshOptions.begin(), extra.begin() + 1, extra.end());
    return;
  }
  size_t eq = option.find('=');
  if (eq == std::string_view::npos || eq == 0) return;
  std::string key = lower(option.substr(0, eq));
  for (std::string_view known : kSshfsSshOpts) {
    if (lower(known) == key) target->sshOptions.push_back("-o" + std::string(option));
  }
}

// ---- /proc scanning ----

struct Process {
  int pid = 0;
  int ppid = 0;
  unsigned long long startTime = 0;
  std::string comm;
  std::vector<std::string> argv;
  std::string cwd;
  std::vector<uint64_t> sockets;  // inodes of the unix/other sockets it holds
};

// "" when the file cannot be read: the process may have exited meanwhile.
std::string readProcFile(const std::string& path) {
  auto text = readFile(path);
  return text ? *text : std::string();
}

std::string readLink(const std::string& path) {
  std::array<char, 4096> buf{};
  ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size() - 1);
  return n > 0 ? std::string(buf.data(), static_cast<size_t>(n)) : std::string();
}

void readSockets(const std::string& dir, Process* p) {
  DIR* fds = ::opendir((dir + "/fd").c_str());
  if (fds == nullptr) return;  // another user's process: no matching by socket
  while (dirent* e = ::readdir(fds)) {
    std::string target = readLink(dir + "/fd/" + e->d_name);
    constexpr std::string_view kSocket = "socket:[";
    if (target.compare(0, kSocket.size(), kSocket) == 0) {
      p->sockets.push_back(std::strtoull(target.c_str() + kSocket.size(), nullptr, 10));
    }
  }
  ::closedir(fds);
}

// The sshfs and ssh processes visible under procRoot, fully read.
std::vector<Process> scanProcesses(const std::string& procRoot) {
  std::vector<Process> out;
  DIR* root = ::opendir(procRoot.c_str());
  if (root == nullptr) return out;
  while (dirent* e = ::readdir(root)) {
    std::string_view name = e->d_name;
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    std::string dir = procRoot + "/" + e->d_name;
    Process p;
    p.pid = std::atoi(e->d_name);
    p.comm = readProcFile(dir + "/comm");
    while (!p.comm.empty() && p.comm.back() == '\n') p.comm.pop_back();
    std::string cmdline = readProcFile(dir + "/cmdline");
    for (size_t pos = 0; pos < cmdline.size();) {
      size_t end = cmdline.find('\0', pos);
      if (end == std::string::npos) end = cmdline.size();
      p.argv.push_back(cmdline.substr(pos, end - pos));
      pos = end + 1;
    }
    std::string program = p.argv.empty() ? "" : basename(p.argv[0]);
    bool wanted = p.comm == "ssh" || p.comm == "sshfs" || program == "ssh" || program == "sshfs";
    if (!wanted || p.argv.empty()) continue;
    if (auto stat = readProcStat(p.pid, procRoot)) {
      p.ppid = stat->ppid;
      p.startTime = stat->startTime;
    }
    p.cwd = readLink(dir + "/cwd");
    readSockets(dir, &p);
    out.push_back(std::move(p));
  }
  ::closedir(root);
  std::sort(out.begin(), out.end(), [](const Process& a, const Process& b) { return a.pid < b.pid; });
  return out;
}

bool isSshfs(const Process& p) { return p.comm == "sshfs" || basename(p.argv[0]) == "sshfs"; }

// mountinfo shows the source as sshfs was given it; fstab mounts may carry the
// old "sshfs#" prefix and people type trailing slashes either way.
std::string normalizeSource(std::string_view source) {
  constexpr std::string_view kLegacy = "sshfs#";
  if (source.substr(0, kLegacy.size()) == kLegacy) source.remove_prefix(kLegacy.size());
  std::string out(source);
  size_t colon = out.find(':');
  while (colon != std::string::npos && out.size() > colon + 2 && out.back() == '/') out.pop_back();
  return out;
}

bool namesMountPoint(const Process& p, const std::string& arg, const std::string& mountPoint) {
  if (arg == mountPoint) return true;
  if (arg.empty() || arg[0] == '/' || p.cwd.empty()) return false;
  std::string rel = arg.substr(0, 2) == "./" ? arg.substr(2) : arg;
  while (!rel.empty() && rel.back() == '/') rel.pop_back();
  return (p.cwd == "/" ? "/" + rel : p.cwd + "/" + rel) == mountPoint;
}

std::vector<const Process*> sshfsCandidates(const std::vector<Process>& procs, const MountInfo& mount) {
  std::string source = normalizeSource(mount.source);
  std::vector<const Process*> bySource;
  for (const Process& p : procs) {
    if (!isSshfs(p)) continue;
    auto same = [&](const std::string& a) { return normalizeSource(a) == source; };
    if (std::any_of(p.argv.begin() + 1, p.argv.end(), same)) bySource.push_back(&p);
  }
  std::vector<const Process*> byMountPoint;
  for (const Process* p : bySource) {
    auto names = [&](const std::string& a) { return namesMountPoint(*p, a, mount.mountPoint); };
    if (std::any_of(p->argv.begin() + 1, p->argv.end(), names)) byMountPoint.push_back(p);
  }
  return byMountPoint.empty() ? bySource : byMountPoint;
}

// sshfs always passes -oClearAllForwardings=yes, then a subsystem or server path.
bool hasSshfsShape(const Process& p) {
  return std::find(p.argv.begin(), p.argv.end(), "-oClearAllForwardings=yes") != p.argv.end();
}

const Process* findSshFor(const std::vector<Process>& procs, const Process& sshfs, const SshTarget& expected,
                          const SocketPeerLookup& peerOf) {
  std::vector<const Process*> ssh;
  for (const Process& p : procs) {
    if (!isSshfs(p)) ssh.push_back(&p);
  }
  if (peerOf) {
    std::set<uint64_t> peers;
    for (uint64_t s : sshfs.sockets) {
      if (std::optional<uint64_t> peer = peerOf(s)) peers.insert(*peer);
    }
    for (const Process* p : ssh) {
      for (uint64_t s : p->sockets) {
        if (peers.count(s)) return p;
      }
    }
  }
  for (const Process* p : ssh) {
    if (p->ppid == sshfs.pid) return p;
  }
  const Process* best = nullptr;
  auto distance = [&](const Process* p) {
    return p->startTime > sshfs.startTime ? p->startTime - sshfs.startTime : sshfs.startTime - p->startTime;
  };
  for (const Process* p : ssh) {
    if (!hasSshfsShape(*p)) continue;
    Result<SshTarget> parsed = parseSshArgv(p->argv);
    if (!parsed.ok() || parsed->destination != expected.destination) continue;
    bool hasAll = std::all_of(expected.sshOptions.begin(), expected.sshOptions.end(), [&](const std::string& o) {
      return std::find(p->argv.begin(), p->argv.end(), o) != p->argv.end();
    });
    if (!hasAll) continue;
    if (best == nullptr || distance(p) < distance(best)) best = p;
  }
  return best;
}

}  // namespace

Result<SshTarget> parseSshArgv(const std::vector<std::string>& argv) {
  if (argv.empty()) return invalid("empty ssh command line");
  SshTarget target;
  target.sshProgram = argv[0];
  for (size_t i = 1; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    if (arg == "--") {
      if (i + 1 < argv.size()) target.destination = argv[i + 1];
      break;
    }
    if (arg.size() < 2 || arg[0] != '-') {
      target.destination = arg;
      break;
    }
    for (size_t j = 1; j < arg.size(); ++j) {
      char c = arg[j];
      if (kSshArgOptions.find(c) == std::string_view::npos) {
        if (kDroppedFlags.find(c) == std::string_view::npos) target.sshOptions.push_back(std::string("-") + c);
        continue;
      }
      bool attached = j + 1 < arg.size();
      if (!attached && i + 1 >= argv.size()) {
        return invalid("ssh option -" + std::string(1, c) + " lacks its argument in '" + joinArgv(argv) + "'");
      }
      std::string value = attached ? arg.substr(j + 1) : argv[++i];
      bool dropped = kDroppedArgOptions.find(c) != std::string_view::npos || (c == 'o' && isDroppedConfig(value));
      if (!dropped && attached) target.sshOptions.push_back("-" + std::string(1, c) + value);
      if (!dropped && !attached) {
        target.sshOptions.push_back("-" + std::string(1, c));
        target.sshOptions.push_back(value);
      }
      break;
    }
  }
  if (target.destination.empty()) {
    return invalid("ssh command line names no destination host: '" + joinArgv(argv) + "'");
  }
  return target;
}

Result<SshTarget> parseSshfsSource(std::string_view source) {
  std::string text = normalizeSource(source);
  SshTarget target;
  size_t i = 0;
  for (; i < text.size() && text[i] != ':'; ++i) {
    if (text[i] != '[') {
      target.destination += text[i];
      continue;
    }
    size_t close = text.find(']', i);
    if (close == std::string::npos) return invalid("sshfs source '" + std::string(source) + "' lacks a ']'");
    target.destination += text.substr(i + 1, close - i - 1);
    i = close;
  }
  if (i >= text.size() || target.destination.empty() || target.destination[0] == '-') {
    return invalid("sshfs source '" + std::string(source) + "' is not of the form [user@]host:[dir]");
  }
  target.remoteDir = text.substr(i + 1);
  return target;
}

void applySshfsArgv(const std::vector<std::string>& sshfsArgv, SshTarget* target) {
  for (size_t i = 1; i < sshfsArgv.size(); ++i) {
    const std::string& arg = sshfsArgv[i];
    if (arg.size() < 2 || arg[0] != '-' || arg == "--") continue;
    char c = arg[1];
    if (c == 'C' && arg.size() == 2) target->sshOptions.push_back("-oCompression=yes");
    if (c != 'p' && c != 'F' && c != 'o') continue;
    std::string value = arg.size() > 2 ? arg.substr(2) : (i + 1 < sshfsArgv.size() ? sshfsArgv[++i] : "");
    if (c == 'p') target->sshOptions.push_back("-oPort=" + value);
    if (c == 'F') target->sshOptions.push_back("-F" + value);
    if (c == 'o') {
      for (const std::string& option : splitFuseOptions(value)) applySshfsOption(option, target);
    }
  }
}

std::optional<uint64_t> unixSocketPeer(uint64_t inode) {
  UniqueFd fd(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
  if (!fd || inode > UINT32_MAX) return std::nullopt;
  struct {
    nlmsghdr header;
    unix_diag_req request;
  } message{};
  message.header.nlmsg_len = sizeof(message);
  message.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  message.header.nlmsg_flags = NLM_F_REQUEST;
  message.request.sdiag_family = AF_UNIX;
  message.request.udiag_states = ~0u;
  message.request.udiag_ino = static_cast<uint32_t>(inode);
  message.request.udiag_show = UDIAG_SHOW_PEER;
  message.request.udiag_cookie[0] = message.request.udiag_cookie[1] = ~0u;  // INET_DIAG_NOCOOKIE
  if (::send(fd.get(), &message, sizeof(message), 0) < 0) return std::nullopt;
  alignas(nlmsghdr) std::array<char, 8192> buf{};
  ssize_t n = ::recv(fd.get(), buf.data(), buf.size(), 0);
  if (n <= 0) return std::nullopt;
  auto* reply = reinterpret_cast<nlmsghdr*>(buf.data());
  if (!NLMSG_OK(reply, static_cast<unsigned>(n)) || reply->nlmsg_type != SOCK_DIAG_BY_FAMILY) return std::nullopt;
  auto* diag = static_cast<unix_diag_msg*>(NLMSG_DATA(reply));
  int attrLength = static_cast<int>(reply->nlmsg_len - NLMSG_LENGTH(sizeof(*diag)));
  for (auto* attr = reinterpret_cast<rtattr*>(diag + 1); RTA_OK(attr, attrLength); attr = RTA_NEXT(attr, attrLength)) {
    if (attr->rta_type == UNIX_DIAG_PEER) return *static_cast<uint32_t*>(RTA_DATA(attr));
  }
  return std::nullopt;
}

Result<SshTarget> findSshfsTarget(const MountInfo& mount, const std::string& procRoot) {
  SocketPeerLookup peerOf;
  if (procRoot == "/proc") peerOf = unixSocketPeer;
  return findSshfsTarget(mount, procRoot, peerOf);
}

Result<SshTarget> findSshfsTarget(const MountInfo& mount, const std::string& procRoot, const SocketPeerLookup& peerOf) {
  Result<SshTarget> fromSource = parseSshfsSource(mount.source);
  if (!fromSource.ok()) return fromSource;
  std::vector<Process> procs = scanProcesses(procRoot);
  std::vector<const Process*> candidates = sshfsCandidates(procs, mount);
  for (const Process* sshfs : candidates) {
    SshTarget expected = *fromSource;
    applySshfsArgv(sshfs->argv, &expected);
    const Process* ssh = findSshFor(procs, *sshfs, expected, peerOf);
    if (ssh == nullptr) continue;
    Result<SshTarget> parsed = parseSshArgv(ssh->argv);
    if (!parsed.ok()) continue;
    parsed->remoteDir = fromSource->remoteDir;
    parsed->fromProcess = true;
    parsed->sshPid = ssh->pid;
    return parsed;
  }
  if (!candidates.empty()) applySshfsArgv(candidates.front()->argv, &fromSource.value());
  return fromSource;
}

std::string sshOriginKey(const SshTarget& target, const std::string& procRoot) {
  if (target.sshPid <= 0) return {};
  auto connections = tcpConnectionsOf(target.sshPid, procRoot);
  if (!connections || connections->size() != 1) return {};
  const TcpConnection& c = connections->front();
  return "ssh " + c.localAddress + " " + std::to_string(c.localPort);
}

// True if the ssh options set `key` themselves (-oKey=..., -o "Key ...", or
// the short flag that means the same, such as -c for Ciphers).
bool setsOption(const std::vector<std::string>& options, std::string_view key, char shortFlag = 0) {
  for (size_t i = 0; i < options.size(); ++i) {
    const std::string& o = options[i];
    if (shortFlag != 0 && o.size() >= 2 && o[0] == '-' && o[1] == shortFlag) return true;
    if (o == "-o" && i + 1 < options.size() && configKey(options[i + 1]) == key) return true;
    if (o.size() > 2 && o.rfind("-o", 0) == 0 && configKey(std::string_view(o).substr(2)) == key) return true;
  }
  return false;
}

std::vector<std::string> agentArgv(const SshTarget& target, const std::string& agentCommand) {
  std::vector<std::string> argv{target.sshProgram};
  // ssh keeps the first value given for a -o option, so ours must be the only
  // one; the flags we add ourselves need not appear twice.
  auto overridden = [](std::string_view option) {
    std::string key = configKey(option);
    return key == "batchmode" || key == "clearallforwardings";
  };
  const std::vector<std::string>& options = target.sshOptions;
  for (size_t i = 0; i < options.size(); ++i) {
    const std::string& o = options[i];
    bool separate = o.size() == 2 && o[0] == '-' && kSshArgOptions.find(o[1]) != std::string_view::npos;
    if (separate && i + 1 < options.size()) {
      if (!(o == "-o" && overridden(options[i + 1]))) {
        argv.push_back(o);
        argv.push_back(options[i + 1]);
      }
      ++i;
      continue;
    }
    if (o == "-x" || o == "-a" || o == "-T" || (o.rfind("-o", 0) == 0 && overridden(o.substr(2)))) continue;
    argv.push_back(o);
  }
  for (const char* fixed : {"-T", "-oBatchMode=yes", "-oClearAllForwardings=yes", "-x", "-a"}) argv.push_back(fixed);
  // Events are tiny and latency-bound: AES-GCM (hardware-accelerated) costs
  // ~25 us less per event than ssh's default chacha20-poly1305 on loopback
  // (docs/BENCHMARKS.md). "^" only moves them to the front of ssh's default
  // list, and a cipher choice in the mount's own options is left alone.
  if (!setsOption(options, "ciphers", 'c')) argv.push_back("-oCiphers=^aes128-gcm@openssh.com,aes256-gcm@openssh.com");
  // Never silence: ssh itself notices a dead network path (~45 s) and exits,
  // even while the application is not reading events; the client then
  // reports the loss. The mount's own settings win.
  if (!setsOption(options, "serveraliveinterval")) argv.push_back("-oServerAliveInterval=15");
  if (!setsOption(options, "serveralivecountmax")) argv.push_back("-oServerAliveCountMax=3");
  // A reconnection attempt runs inside the application's rnotify_next(): an
  // unreachable host must fail fast, not after TCP's minutes of retries.
  if (!setsOption(options, "connecttimeout")) argv.push_back("-oConnectTimeout=5");
  argv.push_back(target.destination);
  argv.push_back("--");
  std::istringstream words(agentCommand);
  for (std::string w; words >> w;) argv.push_back(w);
  return argv;
}

std::string serverPath(const SshTarget& target, const std::string& relative) {
  const std::string& dir = target.remoteDir;
  if (relative.empty()) return dir.empty() ? "." : dir;
  if (dir.empty()) return relative;
  return dir.back() == '/' ? dir + relative : dir + "/" + relative;
}

}  // namespace rnotify
