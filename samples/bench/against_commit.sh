#!/usr/bin/env bash
# Training images/s of this checkout against an older commit, built and run side by side:
#   samples/bench/against_commit.sh OLD_COMMIT [ROUNDS]
# Builds OLD_COMMIT's bench in a git worktree (under $TMPDIR), then alternates the two benches
# ROUNDS times (default 3) on alexnet-fashion at batch 128 and alexnet2012 at batch 32, so
# that both see the same load on a shared machine, and prints each median and the ratio of
# the medians of the rounds. The old bench is the one of commit 284015f (--steps); this one
# takes --repeat. Needs this checkout built in ./build.
set -euo pipefail
old=${1:?usage: against_commit.sh OLD_COMMIT [ROUNDS]}
rounds=${2:-3}
cd "$(dirname "$0")/../.."
new_bench=./build/bin/bench
[ -x "$new_bench" ] || { echo "against_commit.sh: build this checkout first (./build/bin/bench)" >&2; exit 1; }
tree=${TMPDIR:-/tmp}/vkalex-$old
if [ ! -x "$tree/build/bin/bench" ]; then
  [ -d "$tree" ] || git worktree add --detach "$tree" "$old" >/dev/null
  cmake -S "$tree" -B "$tree/build" -DCMAKE_BUILD_TYPE=Release -DVKALEX_BUILD_TESTS=OFF >/dev/null
  cmake --build "$tree/build" -j"$(nproc)" --target vkalex-bench >/dev/null
fi
old_bench=$tree/build/bin/bench

ips() { grep -o '[0-9.]* images/s' | head -1 | cut -d' ' -f1; }
median() { sort -n | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

for spec in alexnet-fashion:128:5 alexnet2012:32:2; do
  IFS=: read -r model batch steps <<<"$spec"
  olds=() news=()
  for ((r = 0; r < rounds; ++r)); do
    olds+=("$("$old_bench" --model "model/$model.json" --mode train --batch "$batch" --steps "$steps" | ips)")
    news+=("$("$new_bench" --model "model/$model.json" --mode train --batch "$batch" --repeat "$steps" --warmup 1 --no-verify | ips)")
  done
  o=$(printf '%s\n' "${olds[@]}" | median)
  n=$(printf '%s\n' "${news[@]}" | median)
  echo "$model batch $batch training: $old ${olds[*]} images/s (median $o); this checkout ${news[*]} (median $n); ratio $(awk -v a="$n" -v b="$o" 'BEGIN {printf "%.2f", a / b}')"
done
