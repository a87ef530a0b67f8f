#!/usr/bin/env bash
# Tokenizer benchmark: njp vs rustbpe (nanochat's trainer), HF tokenizers BpeTrainer,
# SentencePiece BPE and tiktoken. See bench.py for what is measured and how.
#
# Usage: bench/tokenizer/run.sh [VOCAB] [--skip rustbpe,hf,spm,...]
# Environment:
#   NJP_SHARED_DATA  the shared data directory            [default: ../shared/data]
#   NJP_BENCH_VENV   venv for the Python peers (outside the repository) [default: ../venvs/tok]
#   NJP_BENCH_OUT    where corpora, models and results go [default: bench/out/tokenizer, git-ignored]
#   CARGO_TARGET_DIR where cargo puts njp                  [default: target]
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${NJP_SHARED_DATA:-../shared/data}
VENV=${NJP_BENCH_VENV:-../venvs/tok}
OUT=${NJP_BENCH_OUT:-bench/out/tokenizer}
VOCAB=${1:-32768}
shift || true

if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/pip" install -q rustbpe==0.1.0 tokenizers==0.23.3 sentencepiece==0.2.3 tiktoken==0.14.0

TARGET=${CARGO_TARGET_DIR:-target}
# --workspace: the features every other build uses (a per-package build recompiles DataFusion).
cargo build --release --workspace --bins --example encode_speed
python3 bench/tokenizer/prepare.py "$DATA" "$OUT/corpus"

{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') x $(nproc)"
  echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "rustc: $(rustc --version)"
  echo "python peers: $("$VENV/bin/pip" freeze | grep -E '^(rustbpe|tokenizers|sentencepiece|tiktoken)==' | tr '\n' ' ')"
} | tee "$OUT/SETUP-v$VOCAB.txt"

"$VENV/bin/python" bench/tokenizer/bench.py "$OUT/corpus" "$TARGET/release/njp" \
  "$TARGET/release/examples/encode_speed" "$OUT/v$VOCAB" "$VOCAB" "$@"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/SETUP-v$VOCAB.txt"
