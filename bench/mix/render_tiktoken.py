"""nanochat's render_conversation (v1, tokenizer.py) over tiktoken with njp's exported ranks, as
the Python peer of `njp audit`: render every conversation, then the same statistics (lengths,
supervised tokens, rows over the limit, percentiles). Reads the conversations from the catalog's
Parquet with pyarrow, like njp reads them.

usage: render_tiktoken.py TOKENIZER_DIR PARQUET_DIR MAX_SEQ_LEN
"""
import base64
import glob
import json
import sys
import time

import pyarrow.parquet as pq
import tiktoken

tok_dir, data_dir, max_len = sys.argv[1], sys.argv[2], int(sys.argv[3])
t0 = time.perf_counter()
meta = json.load(open(tok_dir + "/njp-tokenizer.json"))
ranks = {base64.b64decode(b): int(r) for b, r in (l.split() for l in open(tok_dir + "/ranks.tiktoken"))}
specials = {s["name"]: s["id"] for s in meta["special_tokens"]}
enc = tiktoken.Encoding("njp", pat_str=meta["pattern"]["regex"], mergeable_ranks=ranks,
                        special_tokens=specials)
S = specials


def render_conversation(conv):
    """nanochat v1 RustBPETokenizer.render_conversation without the silent crop."""
    ids, mask = [], []

    def add(tokens, m):
        if isinstance(tokens, int):
            tokens = [tokens]
        ids.extend(tokens)
        mask.extend([m] * len(tokens))

    messages = conv["messages"]
    if messages[0]["role"] == "system":
        messages = [dict(messages[1], parts=[{"kind": "text", "text": "".join(p["text"] for p in messages[0]["parts"]) + "\n\n" + "".join(p["text"] for p in messages[1]["parts"])}])] + messages[2:]
    add(S["<|bos|>"], 0)
    for msg in messages:
        if msg["role"] == "user":
            add(S["<|user_start|>"], 0)
            add(enc.encode_ordinary("".join(p["text"] for p in msg["parts"])), 0)
            add(S["<|user_end|>"], 0)
        else:
            add(S["<|assistant_start|>"], 0)
            for p in msg["parts"]:
                if p["kind"] == "text":
                    add(enc.encode_ordinary(p["text"]), 1)
                elif p["kind"] == "python":
                    add(S["<|python_start|>"], 1)
                    add(enc.encode_ordinary(p["text"]), 1)
                    add(S["<|python_end|>"], 1)
                else:
                    add(S["<|output_start|>"], 0)
                    add(enc.encode_ordinary(p["text"]), 0)
                    add(S["<|output_end|>"], 0)
            add(S["<|assistant_end|>"], 1)
    return ids, mask


t1 = time.perf_counter()
lens, sup, over, crop_lost = [], 0, 0, 0
n = 0
for f in sorted(glob.glob(data_dir + "/*.parquet")):
    for conv in pq.read_table(f).to_pylist():
        ids, mask = render_conversation(conv)
        lens.append(len(ids))
        s = sum(mask)
        sup += s
        if len(ids) > max_len:
            over += 1
            crop_lost += s - sum(mask[:max_len])
        n += 1
lens.sort()
pct = lambda q: lens[max(1, -(-int(q * len(lens) * 1000) // 1000)) - 1]
t2 = time.perf_counter()
print(json.dumps({"rows": n, "tokens": sum(lens), "supervised": sup, "over_limit": over,
                  "p50": pct(0.5), "p99": pct(0.99), "max": lens[-1], "crop_supervised_lost": crop_lost,
                  "load_s": round(t1 - t0, 3), "render_s": round(t2 - t1, 3), "total_s": round(t2 - t0, 3)}))
