#!/bin/sh
# Every benchmark in one command (docs/BENCHMARKS.md): builds the benchmarks
# (Release, -O2) in their own build directory, runs them one after the other
# and draws the figures. Needs root (tmpfs mounts, fanotify, sysctls, a memory
# cgroup, sshd + sshfs for the ssh lanes) and, for the peer lanes,
# inotify-tools, fswatch and watchman; python3-matplotlib for the figures.
#
#   bench/run_all.sh                 full size (about 20 minutes on 2 busy cores)
#   bench/run_all.sh --quick         scaled down (a few minutes); overwrites the CSVs and figures too
#
# Results: bench/results/{latency_all,latency_all_dedup,throughput,fanout,
# fanout_queue1m,tree,peers,peers_burst}.csv, the samples behind the latency
# figure (bench/results/*_samples.csv, not committed), docs/bench-*.png.
# (bench/run_latency.sh alone writes latency.csv and latency_dedup.csv.)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
build=${RNOTIFY_BENCH_BUILD:-$root/build-bench}
results=$root/bench/results
quick=0
[ "${1:-}" = "--quick" ] && quick=1

cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O2 -DNDEBUG" \
  -DRNOTIFY_BENCH=ON >/dev/null
ninja -j2 -C "$build" rnotifyd bench_latency bench_throughput bench_fanout bench_tree bench_peers
mkdir -p "$results"
b=$build/bench
echo "== machine: $(nproc) CPUs, $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"

if [ $quick = 1 ]; then
  latency="--events 2000 --warmup 200 --burst 0"
  throughput="--events 100000"
  fanout="--events 20000"
  tree="--dirs 100000"
  peers="--events 1000 --warmup 100 --poll-events 3 --burst-events 100000"
else
  latency="--burst 0"
  throughput=""
  fanout=""
  tree=""
  peers=""
fi

echo "== latency (bench_latency)"
"$b/bench_latency" $latency --csv "$results/latency_all.csv" --dedup-csv "$results/latency_all_dedup.csv" \
  --samples "$results/latency_samples.csv"
echo "== throughput (bench_throughput)"
"$b/bench_throughput" $throughput --csv "$results/throughput.csv"
echo "== fan-out (bench_fanout), the kernel queues as they are"
"$b/bench_fanout" $fanout --csv "$results/fanout.csv"
echo "== fan-out (bench_fanout), kernel queues of 1,000,000 events"
"$b/bench_fanout" $fanout --max-queued-events 1000000 --csv "$results/fanout_queue1m.csv"
echo "== a tree of directories (bench_tree)"
"$b/bench_tree" $tree --csv "$results/tree.csv"
echo "== peers (bench_peers)"
"$b/bench_peers" $peers --csv "$results/peers.csv" --burst-csv "$results/peers_burst.csv" \
  --samples "$results/peers_samples.csv"
echo "== figures"
/usr/bin/python3 "$root/bench/plot.py" --results "$results" --out "$root/docs"
