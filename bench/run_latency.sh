#!/bin/sh
# Builds bench_latency (Release) in its own build directory and runs it,
# writing the summary to bench/results/latency.csv, and the own-* lanes'
# copies per change and added latency (de-duplication) to
# bench/results/latency_dedup.csv. Needs root, /dev/fuse, sshd and sshfs for
# the ssh transports (they are skipped otherwise). Extra arguments go to
# bench_latency, e.g. --events 20000, --dir /var/tmp or --transports own-off,own-echo.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${RNOTIFY_BENCH_BUILD:-$root/build-bench}
# -O2: GCC 12 at -O3 (CMake's Release default) reports a false -Wrestrict in
# std::string code under -Werror; -O2 is what distributions build with.
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" \
  -DRNOTIFY_BENCH=ON >/dev/null
ninja -j2 -C "$build" bench_latency rnotifyd
mkdir -p "$root/bench/results"
echo "load before: $(cat /proc/loadavg)"
"$build/bench/bench_latency" --csv "$root/bench/results/latency.csv" \
  --dedup-csv "$root/bench/results/latency_dedup.csv" "$@"
echo "load after: $(cat /proc/loadavg)"
