#!/usr/bin/env bash
# CPU training benchmark and parity check against a PyTorch reference of nanochat v1.
#
#   bench/train/run.sh [PYTHON]
#
# PYTHON: an interpreter with torch + safetensors (default: $NJP_TORCH_PYTHON, else python3).
# Keep that environment outside the repository, e.g.
#   python3 -m venv ../venvs/torch && ../venvs/torch/bin/pip install torch safetensors numpy
#
# 1. parity: PyTorch writes random weights + a batch; njp loads them, compares logits and the
#    loss after two Muon + AdamW steps (Newton–Schulz in f32 on both sides).
# 2. speed: optimizer steps per second of the tiny preset (depth 4, d 256, T 256) at the same
#    batch on both sides, same thread count; target njp step time ≤ 1.5× PyTorch's.
#
# Prints JSON lines; record them in bench/RESULTS.md with date and machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${1:-${NJP_TORCH_PYTHON:-python3}}
THREADS=${THREADS:-$(nproc)}
VOCAB=${VOCAB:-8192}
BATCH=${BATCH:-8}
STEPS=${STEPS:-5}
WORK=$(mktemp -d)
BIN=${CARGO_TARGET_DIR:-target}/release
trap 'rm -rf "$WORK"' EXIT

# --workspace keeps feature unification identical to `cargo test --release --workspace`, so
# nothing is rebuilt when the tests were built first.
cargo build --release -q --workspace --bins --examples

echo "# parity (depth 2, d 128, T 64, vocab 512, batch 2)" >&2
"$PY" bench/train/nanochat_ref.py parity --out "$WORK/parity" --depth 2 --width 128 --heads 1 --kv-heads 1 \
  --vocab 512 --seq-len 64 --batch 2 --steps 2 --ns-dtype float32 >/dev/null
"$BIN"/examples/parity "$WORK/parity"

echo "# parity with GQA (depth 2, d 256, 2 query heads, 1 kv head)" >&2
"$PY" bench/train/nanochat_ref.py parity --out "$WORK/gqa" --depth 2 --width 256 --heads 2 --kv-heads 1 \
  --vocab 300 --seq-len 48 --batch 2 --steps 2 --ns-dtype float32 >/dev/null
"$BIN"/examples/parity "$WORK/gqa"

echo "# speed: tiny preset, vocab $VOCAB, batch $BATCH x 256, $THREADS threads" >&2
RAYON_NUM_THREADS=$THREADS "$BIN"/njp train bench --preset tiny --vocab "$VOCAB" \
  --device-batch-size "$BATCH" --steps "$STEPS" --warmup 2
"$PY" bench/train/nanochat_ref.py bench --depth 4 --width 256 --heads 2 --kv-heads 2 --vocab "$VOCAB" \
  --seq-len 256 --batch "$BATCH" --steps "$STEPS" --warmup 2 --threads "$THREADS"
