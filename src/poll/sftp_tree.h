// SftpTree: polling for sshfs mounts, through a separate SFTP session of our
// own (SftpSession). Scanning the mount itself would see a change made on the
// server only when sshfs's caches expire (dcache_timeout, 20 s by default);
// the session asks the server directly, so a change shows within one
// interval.
//
// Each scan lists the watched directory (and every directory below it for a
// recursive watch) with OPENDIR/READDIR, up to 64 requests in flight, and
// compares the listing with the previous one (TreeView::diff: the same
// ordering as every other re-read). What SFTP version 3 does not carry
// limits what can be told: no inode numbers, so a rename is DELETE + CREATE;
// whole-second mtimes, so a same-size rewrite within one second is not seen.
//
// Nothing waits: the session's start (ssh, its handshake, INIT/VERSION) and
// each scan are made over as many scan() calls as the answers take, each
// call doing what has arrived (fd() readable) or what is due (deadline()).
// A session has `startTimeout` to answer; a scan fails after 60 s without
// an answer while it waits for one.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "mounts/sshfs_target.h"
#include "poll/polled_tree.h"

namespace rnotify {

// Starts the session (ssh spawned, INIT queued) and returns at once; the
// first scan(), the baseline, completes once the server has answered. Only
// spawning ssh can fail here; the rest is told by failed() and error().
Result<std::unique_ptr<PolledTree>> scanOverSftp(const SshTarget& target, const std::string& serverPath,
                                                 bool isDirectory, const PollScanner::Options& options,
                                                 std::chrono::milliseconds startTimeout);

}  // namespace rnotify
