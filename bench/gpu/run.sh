#!/usr/bin/env bash
# d20 training throughput on one NVIDIA GPU (written for a lent H200; < 10 minutes).
#
# Build on the development machine (no CUDA toolkit needed to build):
#   cargo build --release --features cuda --bin njp
#   mkdir -p bench/gpu/bin && cp target/release/njp bench/gpu/bin/njp && strip bench/gpu/bin/njp
# then carry bench/gpu/bin to the GPU machine and run from the repository root:
#   bench/gpu/run.sh [NJP_BIN] [OUT_DIR]
#
# Needs at run time: the driver's libcuda, libnvrtc (not newer than the driver) and the CUDA
# headers (CUDA_PATH, /usr/local/cuda or /opt/cuda; burn-notes §7.1).
#
# Measures, for nanochat d20 (561M parameters, T = 2048, vocab 65,536, Muon + AdamW, grad
# clipping, f32 master weights, bf16 matmuls, chunked attention), the median optimizer-step time
# at increasing device batch sizes until one fails (out of memory) or the time budget runs out:
# tokens/s, MFU against 989 TFLOP/s (nanochat's H100 bf16 constant; H200 has the same peak),
# peak GPU memory (nvidia-smi sampled every 250 ms), plus one plain-attention run for the
# memory comparison. Results: OUT_DIR/results.jsonl (one njp JSON line per run, with the
# batch, exit code and peak memory) and the raw logs.
#
# Reference: nanochat's PyTorch d20 on 8×H100 runs 32 × 2048 per GPU at ~50 % MFU (spec §13).
set -uo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-bench/gpu/bin/njp}
OUT=${2:-${OUT:-bench/gpu/out}}
BUDGET=${BUDGET:-480}           # seconds for all runs together
mkdir -p "$OUT"
START=$(date +%s)
left() { echo $(( BUDGET - ($(date +%s) - START) )); }

{
  date -u +%FT%TZ
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  nvcc --version 2>/dev/null | tail -1
  ls -d /usr/local/cuda* 2>/dev/null
} > "$OUT/machine.txt" 2>&1
cat "$OUT/machine.txt"

run() {  # run LABEL TIMEOUT njp-args...
  local label=$1 limit=$2; shift 2
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 250 > "$OUT/mem_$label.txt" 2>/dev/null &
  local smi=$!
  timeout "$limit" "$BIN" train bench --depth 20 --vocab 65536 --seq-len 2048 --device cuda "$@" \
    > "$OUT/out_$label.json" 2> "$OUT/log_$label.txt"
  local rc=$?
  kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null
  local peak; peak=$(sort -n "$OUT/mem_$label.txt" | tail -1)
  local line; line=$(tail -1 "$OUT/out_$label.json" 2>/dev/null)
  [ -n "$line" ] || line='{}'
  echo "{\"label\":\"$label\",\"rc\":$rc,\"peak_mem_mib\":${peak:-null},\"njp\":$line}" | tee -a "$OUT/results.jsonl"
  return $rc
}

# Largest batch that fits, chunked attention (the default on CUDA).
for B in 8 16 32 48; do
  L=$(left)
  [ "$L" -gt 60 ] || { echo "time budget spent before batch $B"; break; }
  T=$(( L < 240 ? L : 240 ))
  run "chunked_b$B" "$T" --device-batch-size "$B" --steps 4 --warmup 2 || break
done

# burn's plain attention at a small batch, for the memory comparison.
L=$(left)
if [ "$L" -gt 60 ]; then
  run "plain_b4" $(( L < 150 ? L : 150 )) --device-batch-size 4 --attention plain --steps 3 --warmup 1 || true
fi
echo "total $(( $(date +%s) - START ))s; results in $OUT/results.jsonl"
