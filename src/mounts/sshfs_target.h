// SshTarget: how to reach the server behind an sshfs mount with the same ssh
// settings the mount uses. The agent (rnotifyd --stdio) must run as the same
// user on the same host, through the same port, config file, identity and
// proxy as the sshfs connection, or it reaches a different machine or fails to
// authenticate. Those settings are only fully known to the running ssh process
// that sshfs started, so we read its command line from /proc.
//
// sshfs 3.7 starts ssh with a double fork (so ssh is never sshfs's child: it is
// reparented to init or a subreaper) and talks to it over a socketpair. The
// ssh process is therefore found by that socketpair (kernel sock_diag), and
// failing that by its parent or by its command line. Observed on this machine:
//   sshfs -p 22417 -F /tmp/t/ssh_config -o IdentityFile=/tmp/t/user_key,StrictHostKeyChecking=no
//         root@127.0.0.1:/tmp/t/remote /tmp/t/mnt
//   ssh -x -a -oClearAllForwardings=yes -oPort=22417 -F/tmp/t/ssh_config
//       -oIdentityFile=/tmp/t/user_key -oStrictHostKeyChecking=no -2 -s -- root@127.0.0.1 sftp
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "mounts/mount_resolver.h"

namespace rnotify {

struct SshTarget {
  std::string destination;  // "user@host" or "host" as the mount source names it
  // The part after ':' in the source ("" = remote home; may be relative to home).
  std::string remoteDir;
  // Options for ssh, to go before the destination, e.g.
  // {"-oPort=2222", "-F", "my_config", "-oIdentityFile=..."}.
  std::vector<std::string> sshOptions;
  std::string sshProgram = "ssh";  // argv[0] of the ssh process sshfs started (or "ssh")
  bool fromProcess = false;        // true if the options were taken from the running ssh process
  int sshPid = 0;                  // that process, when found: its TCP connection identifies the mount to the server
};

// How the server sees the mount's ssh connection ("ssh <client address>
// <client port>", as in SSH_CONNECTION there), or "" when the ssh process is
// unknown or does not speak TCP itself (ProxyCommand, ProxyJump).
std::string sshOriginKey(const SshTarget& target, const std::string& procRoot = "/proc");

// Splits an ssh argv (argv[0] included) into program, options (everything
// before the destination; options with arguments kept with their argument, in
// the form they were given: "-p2222" or "-p", "2222"), and destination; drops
// the remote command, the "-s sftp" subsystem and anything after the
// destination. Also drops what must not be reused for the agent: -s -N -f -t
// -T -n -G -V -W -O and the -o equivalents (RemoteCommand, RequestTTY,
// SessionType, StdinNull, ForkAfterAuthentication). Handles combined flags
// ("-xa", "-p2222", "-oPort=22").
Result<SshTarget> parseSshArgv(const std::vector<std::string>& argv);

// Splits an sshfs mount source "user@host:dir" ("[::1]:dir" for IPv6) into the
// ssh destination ("user@host", "::1") and remote directory ("dir").
Result<SshTarget> parseSshfsSource(std::string_view source);

// What sshfs itself would pass to ssh, derived from an sshfs argv: -p N,
// -F file, -C and -o options that sshfs forwards to ssh (IdentityFile=...,
// Port=..., ProxyJump=...); -o ssh_command=CMD sets the program. Used when the
// ssh process cannot be found.
void applySshfsArgv(const std::vector<std::string>& sshfsArgv, SshTarget* target);

// Given a unix socket's inode, the inode of its peer (the other end of a
// socketpair), or nothing.
using SocketPeerLookup = std::function<std::optional<uint64_t>(uint64_t inode)>;

// Asks the kernel (NETLINK_SOCK_DIAG, UNIX_DIAG_PEER) for a unix socket's peer.
std::optional<uint64_t> unixSocketPeer(uint64_t inode);

// Finds the sshfs process serving this mount under procRoot (normally
// "/proc"), then the ssh process it started, and parses that process's
// cmdline. The sshfs process is the one whose cmdline holds the mount source
// (and, if several do, the mount point). The ssh process is the one holding
// the other end of sshfs's socketpair; else a child of sshfs; else an ssh
// process with sshfs's command shape, the same destination and the options
// sshfs would give it (the closest in start time wins). If no ssh process is
// found (e.g. sshfs used -o directport), falls back to the mount source plus
// the options derived from the sshfs cmdline (or none), fromProcess=false.
// Errors only when the source cannot be parsed.
Result<SshTarget> findSshfsTarget(const MountInfo& mount, const std::string& procRoot = "/proc");
// Same, with the socket peer lookup supplied (tests use a fake one). The
// two-argument form uses unixSocketPeer() for "/proc" and no lookup otherwise.
Result<SshTarget> findSshfsTarget(const MountInfo& mount, const std::string& procRoot, const SocketPeerLookup& peerOf);

// The argv that starts the agent: {sshProgram, options..., "-T",
// "-oBatchMode=yes", "-oClearAllForwardings=yes", "-x", "-a", destination,
// "--", <agentCommand split into words>}. BatchMode because the agent runs
// inside an application and must never prompt for a password.
std::vector<std::string> agentArgv(const SshTarget& target, const std::string& agentCommand);

// The server-side path for a path inside the mount: remoteDir joined with
// relative ("" + "" -> "." (home); "dir" + "a/b" -> "dir/a/b"; "/srv/x" + "" -> "/srv/x").
std::string serverPath(const SshTarget& target, const std::string& relative);

}  // namespace rnotify
