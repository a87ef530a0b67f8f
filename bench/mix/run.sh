#!/usr/bin/env bash
# Mixture benchmark (issue 5):
#  1. the same mixture query (filters, seeded md5 sampling, UNION ALL, write Parquet/zstd) over the
#     same ~500K-row Parquet in `njp sql` and in DuckDB;
#  2. audit throughput: `njp audit` (render + tokenize every conversation, percentiles, policy
#     costs) vs nanochat's render_conversation in Python over tiktoken with the same ranks.
#
# Usage: bench/mix/run.sh [N_DOCS] [N_CONVS]
# Environment:
#   NJP_SHARED_DATA  the shared data directory                       [default: ../shared/data]
#   NJP_BENCH_VENV   venv with duckdb, tiktoken, pyarrow (outside the repo) [default: ../venv-bench]
#   NJP_BENCH_OUT    scratch directory                               [default: bench/out/mix, git-ignored]
#   CARGO_TARGET_DIR where njp was built                             [default: target]
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${NJP_SHARED_DATA:-../shared/data}
VENV=${NJP_BENCH_VENV:-../venv-bench}
OUT=${NJP_BENCH_OUT:-bench/out/mix}
N_DOCS=${1:-500000}
N_CONVS=${2:-20000}
NJP=${CARGO_TARGET_DIR:-target}/release/njp
if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/pip" install -q duckdb tiktoken pyarrow
[ -x "$NJP" ] || cargo build --release --workspace
PY="$VENV/bin/python"
export NJP_HOME="$OUT/home" NJP_NO_PROGRESS=1
rm -rf "$OUT"; mkdir -p "$OUT"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "cpu: $(lscpu | sed -n 's/^Model name: *//p') x $(nproc)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "peers: $("$VENV/bin/pip" freeze | grep -E '^(duckdb|tiktoken|pyarrow)==' | tr '\n' ' ')"
} | tee "$OUT/SETUP.txt"

python3 bench/mix/gen.py "$DATA" "$OUT" "$N_DOCS" "$N_CONVS"
"$NJP" -q import "$OUT/docs.jsonl" --kind document --name bench_docs --license CC-BY-SA-4.0
"$NJP" -q import "$OUT/convs.jsonl" --kind conversation --name bench_convs --license CC-BY-SA-4.0
DOCS_DIR=$(ls -d "$NJP_HOME"/datasets/bench_docs/1/data)
CONVS_DIR=$(ls -d "$NJP_HOME"/datasets/bench_convs/1/data)
du -sh "$DOCS_DIR" "$CONVS_DIR"

t() { local s; s=$(date +%s.%N); "$@" > /dev/null; echo "$(date +%s.%N) - $s" | bc; }
echo "== query (3 runs each, alternating; seconds) =="
for i in 1 2 3; do
  a=$(t "$NJP" -q sql "$(cat bench/mix/query.sql)" --format parquet --out "$OUT/njp.parquet")
  b=$("$PY" bench/mix/duckdb_query.py "$DOCS_DIR" "$OUT/duckdb.parquet" "$(nproc)" bench/mix/query.sql)
  echo "run $i: njp ${a}s; duckdb rows+seconds: $b"
done
"$NJP" -q sql "SELECT count(*) AS n FROM bench_docs" --format csv
"$PY" -c "import pyarrow.parquet as pq,sys; a=pq.read_table('$OUT/njp.parquet'); b=pq.read_table('$OUT/duckdb.parquet'); print('rows njp', a.num_rows, 'duckdb', b.num_rows, 'same ids', sorted(a['id'].to_pylist())==sorted(b['id'].to_pylist()))"

echo "== audit =="
"$NJP" -q tok train --dataset bench_docs --vocab-size 16384 --out "$OUT/tok" --max-chars 20000000
for th in 1 2; do
  a=$(t "$NJP" -q --threads $th audit bench_convs --tokenizer "$OUT/tok" --max-seq-len 2048 --json --policy truncate --svg "$OUT/audit.svg")
  echo "njp audit threads=$th: ${a}s"
done
"$NJP" -q audit bench_convs --tokenizer "$OUT/tok" --max-seq-len 2048 --json --policy truncate --svg "$OUT/audit.svg" \
  | "$PY" -c "import json,sys; o=json.load(sys.stdin)['overall']; print('njp', o['rows'], o['tokens'], o['supervised'], o['over_limit'], o['p50'], o['p99'], o['max'])"
"$PY" bench/mix/render_tiktoken.py "$OUT/tok" "$CONVS_DIR" 2048
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/SETUP.txt"
