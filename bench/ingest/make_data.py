"""Writes a large ShareGPT-style JSONL for the ingest benchmark.

Sentences come from the bundled Aozora Bunko sample (public domain, samples/documents.jsonl);
every row is a two-turn conversation `{id, conversations: [{from, value}]}`. About one row in
five carries CRLF newlines, trailing spaces, a control character or a decomposed kana, so the
normalizer has real work. Deterministic (seeded).

Usage: python3 make_data.py OUT.jsonl [ROWS]
"""
import json
import random
import re
import sys
from pathlib import Path

out = Path(sys.argv[1])
rows = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
docs = Path(__file__).resolve().parents[2] / "samples" / "documents.jsonl"
sentences = []
for line in docs.read_text(encoding="utf-8").splitlines():
    text = json.loads(line)["text"]
    sentences += [s + "。" for s in re.split(r"[。\n]", text) if 8 <= len(s) <= 120]
rng = random.Random(20261128)
noise = [lambda s: s.replace("\n", "\r\n"), lambda s: s + "  ", lambda s: s + "\x07",
         lambda s: s.replace("が", "か\u3099", 1), lambda s: "\n\n\n" + s]
out.parent.mkdir(parents=True, exist_ok=True)
with out.open("w", encoding="utf-8") as f:
    for i in range(rows):
        q = "".join(rng.choice(sentences) for _ in range(rng.randint(1, 2)))
        a = "\n".join(rng.choice(sentences) for _ in range(rng.randint(2, 5)))
        if rng.random() < 0.2:
            a = rng.choice(noise)(a)
        row = {"id": f"r{i}", "conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}
        f.write(json.dumps(row, ensure_ascii=False) + "\n")
print(f"{rows} rows, {out.stat().st_size / 1e6:.1f} MB -> {out}")
