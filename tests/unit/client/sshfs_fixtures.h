// Command lines observed on the development machine (sshfs 3.7.3, OpenSSH 9.2)
// by mounting from a throwaway sshd on 127.0.0.1:22417 with
//   sshfs -p 22417 -F $T/ssh_config -o IdentityFile=$T/user_key,StrictHostKeyChecking=no,
//         UserKnownHostsFile=/dev/null root@127.0.0.1:$T/remote "$T/mnt point"
// and reading /proc/PID/cmdline of sshfs and of the ssh it started. With and
// without -f, the ssh process's parent was pid 1 (sshfs double-forks), and its
// stdin was one end of a socketpair whose other end sshfs held.
#pragma once

#include <string>
#include <vector>

namespace rnotify::fixtures {

inline const std::vector<std::string> kSshfsArgv = {
    "sshfs",
    "-p",
    "22417",
    "-F",
    "/tmp/mr-sshd.MMtw/ssh_config",
    "-o",
    "IdentityFile=/tmp/mr-sshd.MMtw/user_key,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null",
    "root@127.0.0.1:/tmp/mr-sshd.MMtw/remote",
    "/tmp/mr-sshd.MMtw/mnt point"};

inline const std::vector<std::string> kSshArgv = {"ssh",
                                                  "-x",
                                                  "-a",
                                                  "-oClearAllForwardings=yes",
                                                  "-oPort=22417",
                                                  "-F/tmp/mr-sshd.MMtw/ssh_config",
                                                  "-oIdentityFile=/tmp/mr-sshd.MMtw/user_key",
                                                  "-oStrictHostKeyChecking=no",
                                                  "-oUserKnownHostsFile=/dev/null",
                                                  "-2",
                                                  "-s",
                                                  "--",
                                                  "root@127.0.0.1",
                                                  "sftp"};

// The same with -f (foreground) and the source "127.0.0.1:" (remote home).
inline const std::vector<std::string> kSshfsForegroundArgv = {
    "sshfs",      "-f",
    "-p",         "22417",
    "-F",         "/tmp/mr-sshd.MMtw/ssh_config",
    "-o",         "IdentityFile=/tmp/mr-sshd.MMtw/user_key,StrictHostKeyChecking=no,UserKnownHostsFile=/dev/null",
    "127.0.0.1:", "/tmp/mr-sshd.MMtw/mnt2"};

inline const std::vector<std::string> kSshForegroundArgv = {"ssh",
                                                            "-x",
                                                            "-a",
                                                            "-oClearAllForwardings=yes",
                                                            "-oPort=22417",
                                                            "-F/tmp/mr-sshd.MMtw/ssh_config",
                                                            "-oIdentityFile=/tmp/mr-sshd.MMtw/user_key",
                                                            "-oStrictHostKeyChecking=no",
                                                            "-oUserKnownHostsFile=/dev/null",
                                                            "-2",
                                                            "-s",
                                                            "--",
                                                            "127.0.0.1",
                                                            "sftp"};

// The options parseSshArgv keeps from kSshArgv / kSshForegroundArgv.
inline const std::vector<std::string> kSshOptions = {"-x",
                                                     "-a",
                                                     "-oClearAllForwardings=yes",
                                                     "-oPort=22417",
                                                     "-F/tmp/mr-sshd.MMtw/ssh_config",
                                                     "-oIdentityFile=/tmp/mr-sshd.MMtw/user_key",
                                                     "-oStrictHostKeyChecking=no",
                                                     "-oUserKnownHostsFile=/dev/null",
                                                     "-2"};

}  // namespace rnotify::fixtures
