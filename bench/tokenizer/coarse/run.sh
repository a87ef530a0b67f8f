#!/bin/bash
# Coarse-pattern sweep for two-stage training (2026-11-29). Usage:
#   source patterns.sh; ./run.sh NAME VOCAB STAGE1 [STAGE2 T]
# e.g. ./run.sh s1b_ws_1024 32768 "$S1B" "$WS" 1024
# Env: CORPUS (default bench/out/corpus), TARGET (cargo target dir, default target),
#      OUT (default bench/out/coarse).
# Appends "name, train s, aozora, wiki, chat B/tok (% over njp gpt4)" to $OUT/results.tsv.
set -e
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
C=${CORPUS:-$root/bench/out/corpus}
T=${TARGET:-$root/target}
O=${OUT:-$root/bench/out/coarse}
name=$1; vocab=$2; st1=$3; shift 3
out=$O/$name
mkdir -p "$out"
nice -n 10 "$T/release/examples/train_file" "$C/train.txt" "$vocab" "$st1" "$out" "$@" > "$out.train.json"
sec=$(python3 -c "import json;print(json.load(open('$out.train.json'))['seconds'])")
nice -n 10 "$T/release/njp" tok compare --json --no-progress --tokenizer "$out" \
  --text "$C/heldout_aozora.txt" --text "$C/heldout_wiki.txt" --text "$C/heldout_chat.txt" > "$out.cmp.json"
python3 "$here/summ.py" "$name" "$sec" "$out.cmp.json" | tee -a "$O/results.tsv"
