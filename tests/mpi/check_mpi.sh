#!/bin/bash
# Data parallelism over MPI, end to end with the train program (ctest label "mpi"):
#   1. 2 processes train alexnet-fashion for 4 steps of a global batch of 11 (shards of 5 and
#      6, augmentation and dropout on); their checkpoint (weights and momentum) is within a
#      relative L2 of 1e-5 of one process's, tensor by tensor;
#   2. a run of 2 processes stopped after 2 steps, resumed by 1 process to step 4: the same;
#   3. a process that fails (rank 1 given a device that does not exist) ends the job with its
#      error and a non-zero status, the other process included;
#   4. a process killed (SIGKILL) in the middle of training ends the job, no process left;
#   and bench --mode train under 2 processes reports the all-reduce and the scaling efficiency.
# Usage: check_mpi.sh MPIRUN BIN_DIR WORK_DIR (VKALEX_MODEL_DIR must name the model folder).
set -u
mpirun=$1
bin=$2
work=$3
rm -rf "$work"
mkdir -p "$work"

# Containers: no cross-memory attach between processes; root is allowed; lavapipe runs on the
# CPU, so a process must not be bound to one core (mpirun's default for 2 processes).
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpi=("$mpirun" --allow-run-as-root --bind-to none --oversubscribe)
common=(--model "$VKALEX_MODEL_DIR/alexnet-fashion.json" --data fashion-mnist --limit 110 --batch 11 --epochs 1
        --test-limit 22 --augment pad:2,flip --seed 7 --lr 0.02)

fail() {
  echo "FAIL: $*"
  exit 1
}
step() { echo "== $*"; }

step "1 process, 4 steps"
"$bin/train" "${common[@]}" --out "$work/one" --stop-after 4 || fail "train (1 process)"

step "2 processes, 4 steps, gradient buckets of 16 KiB"
"${mpi[@]}" -n 2 "$bin/train" "${common[@]}" --out "$work/two" --stop-after 4 --bucket-kib 16 ||
  fail "train (2 processes)"
[ -e "$work/two/checkpoint.safetensors" ] || fail "rank 0 wrote no checkpoint"
"$bin/compare_checkpoints" "$work/two/checkpoint.safetensors" "$work/one/checkpoint.safetensors" 1e-5 ||
  fail "2 processes differ from 1"

step "resume: 2 processes to step 2, then 1 process to step 4"
"${mpi[@]}" -n 2 "$bin/train" "${common[@]}" --out "$work/resume" --stop-after 2 --bucket-kib 16 ||
  fail "train (2 processes, to step 2)"
"$bin/train" "${common[@]}" --out "$work/resume" --resume "$work/resume/checkpoint.safetensors" --stop-after 4 ||
  fail "train (resumed by 1 process)"
"$bin/compare_checkpoints" "$work/resume/checkpoint.safetensors" "$work/one/checkpoint.safetensors" 1e-5 ||
  fail "the run resumed from 2 processes by 1 differs from 1 process throughout"

step "bench --mode train under 2 processes reports the exchange"
"${mpi[@]}" -n 2 "$bin/bench" --model "$VKALEX_MODEL_DIR/alexnet-fashion.json" --mode train --batch 4 --repeat 3 \
  --warmup 1 --bucket-kib 16 --json "$work/bench.json" >"$work/bench.log" 2>&1 || { cat "$work/bench.log"; fail "bench"; }
cat "$work/bench.log"
[ "$(grep -c '^device:' "$work/bench.log")" = 1 ] || fail "bench printed from more than rank 0"
grep -q "batch 4 x 2 processes (global batch 8): .* scaling efficiency" "$work/bench.log" || fail "no scaling line"
python3 - "$work/bench.json" <<'PY' || fail "bench's JSON lacks the data-parallel figures"
import json, sys
dp = json.load(open(sys.argv[1]))["runs"][0]["data_parallel"]
assert dp["processes"] == 2 and dp["global_batch"] == 8 and dp["buckets"] > 1, dp
assert dp["allreduce_ms"] > 0 and dp["step_exchange_ms"] > 0 and 0 < dp["efficiency"], dp
PY

step "a process that fails ends the job"
timeout 300 "${mpi[@]}" -n 1 "$bin/train" "${common[@]}" --out "$work/failed" : \
  -n 1 env VKALEX_DEVICE=no-such-gpu "$bin/train" "${common[@]}" --out "$work/failed" >"$work/failed.log" 2>&1
status=$?
cat "$work/failed.log"
[ $status -ne 124 ] || fail "the job hung (killed after 300 s)"
[ $status -ne 0 ] || fail "the job succeeded with a failed process"
grep -q "train (rank 1 of 2): .*no-such-gpu" "$work/failed.log" || fail "rank 1's error is not shown"

step "a process killed while training ends the job"
"${mpi[@]}" -n 2 "$bin/train" "${common[@]}" --limit 11000 --out "$work/killed" --bucket-kib 16 \
  >"$work/killed.log" 2>&1 &
job=$!
victim=""
for _ in $(seq 1 600); do  # up to 60 s for the processes to start
  for pid in $(pgrep -f -- "--out $work/killed"); do
    if tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then victim=$pid; fi
  done
  [ -n "$victim" ] && break
  sleep 0.1
done
[ -n "$victim" ] || { kill $job; fail "rank 1 of the job to kill never started"; }
sleep 8  # well into training (contexts made, steps running)
kill -0 $job 2>/dev/null || { cat "$work/killed.log"; fail "the job ended before rank 1 was killed"; }
kill -9 "$victim"
waited=0
while kill -0 $job 2>/dev/null && [ $waited -lt 120 ]; do
  sleep 1
  waited=$((waited + 1))
done
if kill -0 $job 2>/dev/null; then
  pkill -9 -f -- "--out $work/killed"
  kill -9 $job
  fail "the job hung after rank 1 was killed"
fi
wait $job
status=$?
cat "$work/killed.log"
[ $status -ne 0 ] || fail "the job succeeded with a killed process"
sleep 1
if pgrep -f -- "--out $work/killed" >/dev/null; then
  pkill -9 -f -- "--out $work/killed"
  fail "a process of the killed job is still running"
fi
echo "ended $waited s after the kill, status $status"
echo "all passed"
