"""The peer: Hugging Face `datasets` doing the same job as `njp ingest` with dedup off —
read the JSONL, adapt ShareGPT turns to role/content messages, normalize every text (control
characters, newlines, NFC, trailing blanks and blank-line runs, trim), write Parquet.

Usage: python hf_datasets.py IN.jsonl OUT.parquet CACHE_DIR
Prints `rows seconds` on the last line. Single process (`num_proc` unset), like njp's pipeline.
"""
import re
import sys
import time
import unicodedata

from datasets import load_dataset

src, dst, cache = sys.argv[1], sys.argv[2], sys.argv[3]
CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufeff\ufffe\uffff]")
NEWLINE = re.compile("\r\n|[\r\x85\u2028\u2029]")
BLANKS = re.compile("\n{3,}")


def clean(s):
    s = CONTROL.sub("", s)
    s = NEWLINE.sub("\n", s)
    s = unicodedata.normalize("NFC", s)
    s = "\n".join(line.rstrip(" \t\u3000") for line in s.strip(" \t\n").split("\n"))
    return BLANKS.sub("\n\n", s)


ROLES = {"human": "user", "gpt": "assistant"}


def adapt(row):
    return {
        "id": row["id"],
        "messages": [{"role": ROLES[m["from"]], "content": clean(m["value"])} for m in row["conversations"]],
    }


t0 = time.perf_counter()
ds = load_dataset("json", data_files=src, split="train", cache_dir=cache)
ds = ds.map(adapt, remove_columns=ds.column_names)
ds.to_parquet(dst)
dt = time.perf_counter() - t0
print(len(ds), f"{dt:.2f}")
