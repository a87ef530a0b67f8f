#!/usr/bin/env bash
# Ingest benchmark: `njp ingest` (adapter + normalization + Parquet write, and the full pipeline
# with exact + MinHash dedup) against Hugging Face `datasets` map + to_parquet on the same JSONL.
#
# Usage: bench/ingest/run.sh [ROWS]
# Environment:
#   NJP_BENCH_VENV  venv with `datasets` (outside the repository) [default: ../venv-ingest-bench]
#   NJP_BENCH_OUT   data, catalogs and results                      [default: bench/out/ingest, git-ignored]
#   CARGO_TARGET_DIR  where cargo puts njp                          [default: target]
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV=${NJP_BENCH_VENV:-../venv-ingest-bench}
OUT=${NJP_BENCH_OUT:-bench/out/ingest}
ROWS=${1:-200000}
TARGET=${CARGO_TARGET_DIR:-target}
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/python" -c "import datasets" 2>/dev/null || "$VENV/bin/pip" install -q datasets
cargo build --release --workspace
NJP="$TARGET/release/njp"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
[ -f "$OUT/chat.jsonl" ] || python3 bench/ingest/make_data.py "$OUT/chat.jsonl" "$ROWS"

recipe() { # name dedup(true|false)
  cat > "$OUT/$1.toml" <<TOML
name = "$1"
dataset = "$1"
description = "ingest benchmark"
kind = "conversation"
license = "LicenseRef-PublicDomain"
layout = "verified"
[source]
type = "local"
paths = ["$OUT/chat.jsonl"]
[dedup]
exact = $2
near = $2
TOML
}
recipe bench_nodedup false
recipe bench_dedup true

echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') x $(nproc); load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "input: $(wc -l < "$OUT/chat.jsonl") rows, $(du -m "$OUT/chat.jsonl" | cut -f1) MB"
# zstd (njp's default codec) and snappy (the codec HF `datasets` / pyarrow write by default).
for run in bench_nodedup:zstd bench_nodedup:snappy bench_dedup:zstd; do
  r=${run%%:*}; codec=${run##*:}
  rm -rf "$OUT/home-$r"
  s=$(date +%s.%N)
  "$NJP" --home "$OUT/home-$r" --no-progress --compression "$codec" ingest "$OUT/$r.toml" --max-reject-ratio 0 >/dev/null 2>"$OUT/$r-$codec.log"
  e=$(date +%s.%N)
  mb=$(du -cm "$OUT/home-$r"/datasets/*/*/data/*.parquet | tail -1 | cut -f1)
  echo "njp $r ($codec): $(echo "$e - $s" | bc) s  ($(grep -o 'published.*' "$OUT/$r-$codec.log"); data files $mb MB)"
done
rm -rf "$OUT/hf-cache" "$OUT/hf.parquet"
"$VENV/bin/python" bench/ingest/hf_datasets.py "$OUT/chat.jsonl" "$OUT/hf.parquet" "$OUT/hf-cache" | tail -1 | \
  awk '{printf "hf datasets map+to_parquet: %s s (%d rows)\n", $2, $1}'
