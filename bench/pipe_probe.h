// PipeProbe: the transport floor under the ssh path. A tiny agent (this same
// binary, run with --probe-agent) reads one byte, takes CLOCK_MONOTONIC and
// writes the 8-byte timestamp; the benchmark reads it and takes the clock
// again. Both ends share the machine's monotonic clock, so the difference is
// the one-way latency server -> client of the byte stream alone: for ssh that
// is agent write -> sshd -> loopback TCP -> ssh -> client read, exactly the
// hops an rnotify event takes after rnotifyd wrote it. Started directly (no
// ssh) it is the cost of one pipe hop.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace rnotify::bench {

// The agent side; returns at end of input. Exit code for main().
int runProbeAgent();

// Starts `argv` (which must run the probe agent), takes `warmup` untimed and
// then `count` timed one-way samples (nanoseconds). Throws on failure.
std::vector<int64_t> measureOneWay(const std::vector<std::string>& argv, size_t count, size_t warmup);

}  // namespace rnotify::bench
