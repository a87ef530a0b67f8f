#!/usr/bin/env python3
"""Tokenizer benchmark: njp vs rustbpe, HF tokenizers BpeTrainer, SentencePiece BPE, tiktoken.

Run through run.sh (which builds njp, installs the peers into a venv outside the repo and
prepares the corpus). Usage:
  bench.py CORPUS_DIR NJP_BIN ENCODE_SPEED_BIN OUT_DIR VOCAB [--skip NAME,...]

For every trainer: wall seconds of the training call (peers: the call inside Python, after the
corpus is in memory; njp: the whole `njp tok train` process, reading and saving included), peak
RSS of its process (os.wait4), and held-out bytes/token and chars/token on three held-out files.
Then single-thread encode MB/s of njp's encoder vs tiktoken built from the same ranks, with an
id-for-id parity check, and the same check for the exported HF tokenizer.json.
Writes OUT_DIR/results.json and prints a Markdown table.
"""
import json, os, subprocess, sys, time

corpus, njp, encode_speed, out, vocab = sys.argv[1:6]
vocab = int(vocab)
skip = set(sys.argv[sys.argv.index("--skip") + 1].split(",")) if "--skip" in sys.argv else set()
os.makedirs(out, exist_ok=True)
PY = sys.executable
TRAIN = f"{corpus}/train.txt"
HELD = ["aozora", "wiki", "chat"]
SPECIALS = ["<|bos|>", "<|user_start|>", "<|user_end|>", "<|assistant_start|>", "<|assistant_end|>",
            "<|python_start|>", "<|python_end|>", "<|output_start|>", "<|output_end|>"]
GPT4 = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
JA = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+(?:[\p{Han}々〆ヶ]+\p{Hiragana}*|\p{Hiragana}+|[\p{Katakana}ー]+|[^\P{L}\p{Han}\p{Hiragana}\p{Katakana}]+)|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
PATTERNS = {"gpt4": GPT4, "ja": JA}


def run(cmd, env=None, timeout=None):
    """Runs cmd; returns (wall seconds, peak RSS MiB, stdout, stderr)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    try:
        so, se = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        so, se = p.communicate()
        raise RuntimeError(f"timed out after {timeout} s: {cmd[:3]}")
    wall = time.perf_counter() - t
    # communicate() already reaped the child; use the rusage recorded for children instead.
    return wall, so.decode(), se.decode(), p.returncode


def run_rss(cmd, env=None, timeout=None):
    """As run(), measuring the child's own peak RSS with os.wait4."""
    t = time.perf_counter()
    with open(f"{out}/stdout.tmp", "wb") as so, open(f"{out}/stderr.tmp", "wb") as se:
        p = subprocess.Popen(cmd, stdout=so, stderr=se, env={**os.environ, **(env or {})})
        deadline = t + (timeout or 1e9)
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                p.kill()
                os.wait4(p.pid, 0)
                return None
            time.sleep(0.05)
    wall = time.perf_counter() - t
    so = open(f"{out}/stdout.tmp").read()
    se = open(f"{out}/stderr.tmp").read()
    if os.waitstatus_to_exitcode(status) not in (0,):
        raise RuntimeError(f"{cmd[:4]} failed:\n{se[-3000:]}")
    return wall, ru.ru_maxrss / 1024, so, se


def held_lines(name):
    return [l for l in open(f"{corpus}/heldout_{name}.txt", encoding="utf-8").read().split("\n") if l]


# Python snippets run in fresh interpreters (one process per trainer, so peak RSS is its own).
PEER_TRAIN = {
    "rustbpe": """
import json, sys, time, rustbpe
lines = open(TRAIN, encoding="utf-8").read().split("\\n")
tok = rustbpe.Tokenizer()
t = time.perf_counter()
tok.train_from_iterator(iter(lines), vocab_size=VOCAB - 9, pattern=PATTERN)
secs = time.perf_counter() - t
ranks = tok.get_mergeable_ranks()
import base64
with open(OUTP + "/ranks.tiktoken", "w") as f:
    for b, r in sorted(ranks, key=lambda x: x[1]):
        f.write(base64.b64encode(bytes(b)).decode() + " " + str(r) + "\\n")
print(json.dumps({"train_s": secs, "n": len(ranks)}))
""",
    "hf": """
import json, time
from tokenizers import Tokenizer, Regex, models, pre_tokenizers, trainers, decoders
lines = open(TRAIN, encoding="utf-8").read().split("\\n")
tok = Tokenizer(models.BPE(byte_fallback=False))
tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(PATTERN), behavior="isolated"),
    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
tok.decoder = decoders.ByteLevel()
tr = trainers.BpeTrainer(vocab_size=VOCAB - 9, show_progress=False, special_tokens=[],
    initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
t = time.perf_counter()
tok.train_from_iterator(lines, trainer=tr)
secs = time.perf_counter() - t
tok.save(OUTP + "/tokenizer.json")
print(json.dumps({"train_s": secs, "n": tok.get_vocab_size()}))
""",
    "spm": """
import json, time, sentencepiece as spm
t = time.perf_counter()
spm.SentencePieceTrainer.train(input=TRAIN, model_prefix=OUTP + "/spm", model_type="bpe",
    vocab_size=VOCAB - 9, character_coverage=0.9995, byte_fallback=True, input_sentence_size=0,
    max_sentence_length=1 << 20, num_threads=os.cpu_count(), minloglevel=2)
secs = time.perf_counter() - t
print(json.dumps({"train_s": secs}))
""",
}


def peer_train(kind, pattern_name, outp, timeout):
    os.makedirs(outp, exist_ok=True)
    code = (f"import os\nTRAIN={TRAIN!r}\nVOCAB={vocab}\nOUTP={outp!r}\nPATTERN={PATTERNS.get(pattern_name, '')!r}\n"
            + PEER_TRAIN[kind])
    r = run_rss([PY, "-c", code], timeout=timeout)
    if r is None:
        return None
    wall, rss, so, _ = r
    info = json.loads(so.strip().splitlines()[-1])
    return {"train_s": info["train_s"], "process_s": wall, "rss_mib": rss}


def njp_train(pattern, outp, threads=None, extra=()):
    cmd = [njp, "--no-progress", "tok", "train", "--input", TRAIN, "--vocab-size", str(vocab), "--out", outp,
           "--pattern", pattern, "--doc-cap", "0", *extra]
    if threads:
        cmd[1:1] = ["--threads", str(threads)]
    wall, rss, so, se = run_rss(cmd)
    meta = json.load(open(f"{outp}/njp-tokenizer.json"))["training"]
    return {"train_s": wall, "process_s": wall, "rss_mib": rss, "stats": meta}


# Held-out compression for each kind of model (one process per model, lines encoded separately).
PEER_COMPRESS = {
    "tiktoken": """
import base64, json, tiktoken
ranks = {}
for l in open(MODEL + "/ranks.tiktoken"):
    b, r = l.split(); ranks[base64.b64decode(b)] = int(r)
enc = tiktoken.Encoding("m", pat_str=PATTERN, mergeable_ranks=ranks, special_tokens={})
print(json.dumps({h: sum(len(x) for x in enc.encode_ordinary_batch(L[h], num_threads=2)) for h in L}))
""",
    "hf": """
import json
from tokenizers import Tokenizer
tok = Tokenizer.from_file(MODEL + "/tokenizer.json")
print(json.dumps({h: sum(len(e.ids) for e in tok.encode_batch(L[h], add_special_tokens=False)) for h in L}))
""",
    "spm": """
import json, sentencepiece as spm
sp = spm.SentencePieceProcessor(model_file=MODEL + "/spm.model")
print(json.dumps({h: sum(len(x) for x in sp.encode(L[h])) for h in L}))
""",
}


def compress(kind, model, pattern_name):
    code = (f"import json\nMODEL={model!r}\nPATTERN={PATTERNS.get(pattern_name, '')!r}\n"
            f"L={{h: [l for l in open({corpus!r} + '/heldout_' + h + '.txt', encoding='utf-8').read().split(chr(10)) if l] for h in {HELD!r}}}\n"
            + PEER_COMPRESS[kind])
    _, so, se, rc = run([PY, "-c", code])
    if rc:
        raise RuntimeError(se[-2000:])
    return json.loads(so.strip().splitlines()[-1])


def njp_compress(model):
    _, so, se, rc = run([njp, "tok", "compare", "--json", "--tokenizer", model, "--text",
                         *[f"{corpus}/heldout_{h}.txt" for h in HELD]])
    if rc:
        raise RuntimeError(se)
    res = {}
    for line in so.splitlines():
        v = json.loads(line)
        res[os.path.basename(v["text"])[len("heldout_"):-4]] = v["tokens"]
    return res


held_stats = {h: {"bytes": sum(len(l.encode()) for l in held_lines(h)), "chars": sum(len(l) for l in held_lines(h))}
              for h in HELD}
results = {"vocab": vocab, "corpus": json.load(open(f"{corpus}/corpus.json")), "held": held_stats, "train": {},
           "encode": {}}


def record(name, r, tokens):
    if r is None:
        results["train"][name] = {"timeout": True}
        print(f"{name}: timed out", flush=True)
        return
    r["held_tokens"] = tokens
    results["train"][name] = r
    print(name, json.dumps({k: v for k, v in r.items() if k != "stats"}), flush=True)
    json.dump(results, open(f"{out}/results.json", "w"), indent=1)


jobs = [
    ("njp ja", lambda: njp_train("ja", f"{out}/njp-ja"), lambda: njp_compress(f"{out}/njp-ja")),
    ("njp ja (1 thread)", lambda: njp_train("ja", f"{out}/njp-ja-1t", threads=1), lambda: njp_compress(f"{out}/njp-ja-1t")),
    # Best compression (opt-in): two stages, ja-char up to 1,024 ids, then ja-span chunks.
    ("njp ja-char->ja-span", lambda: njp_train("ja-char", f"{out}/njp-ja-span", extra=(
        "--stage2-pattern", "ja-span", "--transition-vocab", "1024")),
     lambda: njp_compress(f"{out}/njp-ja-span")),
    ("njp gpt4", lambda: njp_train("gpt4", f"{out}/njp-gpt4"), lambda: njp_compress(f"{out}/njp-gpt4")),
    # Opt-in two-stage training (SuperBPE-style): ja up to 8,192 ids, then ja-phrase chunks.
    ("njp ja->ja-phrase", lambda: njp_train("ja", f"{out}/njp-ja-phrase", extra=(
        "--stage2-pattern", "ja-phrase", "--transition-vocab", "8192")),
     lambda: njp_compress(f"{out}/njp-ja-phrase")),
    ("rustbpe gpt4", lambda: peer_train("rustbpe", "gpt4", f"{out}/rustbpe-gpt4", 1800),
     lambda: compress("tiktoken", f"{out}/rustbpe-gpt4", "gpt4")),
    ("rustbpe ja", lambda: peer_train("rustbpe", "ja", f"{out}/rustbpe-ja", 1800),
     lambda: compress("tiktoken", f"{out}/rustbpe-ja", "ja")),
    ("hf gpt4", lambda: peer_train("hf", "gpt4", f"{out}/hf-gpt4", 1800), lambda: compress("hf", f"{out}/hf-gpt4", "gpt4")),
    ("hf ja", lambda: peer_train("hf", "ja", f"{out}/hf-ja", 1800), lambda: compress("hf", f"{out}/hf-ja", "ja")),
    ("spm bpe", lambda: peer_train("spm", "", f"{out}/spm", 1800), lambda: compress("spm", f"{out}/spm", "")),
]
for name, train, comp in jobs:
    if name.split()[0] in skip or name in skip:
        continue
    r = train()
    record(name, r, comp() if r else None)

# Merges parity: njp vs rustbpe on the same pattern (same chunks, same tie rule).
for pat in ["gpt4", "ja"]:
    a, b = f"{out}/njp-{pat}/ranks.tiktoken", f"{out}/rustbpe-{pat}/ranks.tiktoken"
    if os.path.exists(a) and os.path.exists(b):
        la, lb = open(a).read().split("\n"), open(b).read().split("\n")
        same = next((i for i, (x, y) in enumerate(zip(la, lb)) if x != y), min(len(la), len(lb)))
        results.setdefault("parity", {})[pat] = {"identical_prefix": same, "njp": len(la) - 1, "rustbpe": len(lb) - 1,
                                                 "differing_lines": sum(x != y for x, y in zip(la, lb))}
print("parity", results.get("parity"), flush=True)

# Single-thread encode: njp vs tiktoken (same ranks, same pattern), whole held-out Aozora file as one
# string (plus the wiki file), and id-for-id parity; the HF export is checked for parity too.
ENC_TIKTOKEN = """
import base64, json, sys, time, array, tiktoken
ranks = {}
for l in open(MODEL + "/ranks.tiktoken"):
    b, r = l.split(); ranks[base64.b64decode(b)] = int(r)
meta = json.load(open(MODEL + "/njp-tokenizer.json"))
enc = tiktoken.Encoding("m", pat_str=meta["pattern"]["regex"], mergeable_ranks=ranks,
    special_tokens={s["name"]: s["id"] for s in meta["special_tokens"]})
text = open(TEXT, encoding="utf-8").read()
ts = []
for _ in range(5):
    t = time.perf_counter(); ids = enc.encode_ordinary(text); ts.append(time.perf_counter() - t)
ts.sort()
ours = array.array("I"); ours.frombytes(open(IDS, "rb").read())
from tokenizers import Tokenizer
hf = Tokenizer.from_file(MODEL + "/tokenizer.json")
t = time.perf_counter(); hids = hf.encode(text, add_special_tokens=False).ids; hs = time.perf_counter() - t
print(json.dumps({"tiktoken_best_mb_s": len(text.encode()) / 1e6 / ts[0],
    "tiktoken_median_mb_s": len(text.encode()) / 1e6 / ts[2], "tokens": len(ids),
    "parity_tiktoken": list(ours) == ids, "parity_hf": list(ours) == hids, "hf_mb_s": len(text.encode()) / 1e6 / hs,
    "first_diff_tiktoken": next((i for i, (a, b) in enumerate(zip(ours, ids)) if a != b), None),
    "first_diff_hf": next((i for i, (a, b) in enumerate(zip(ours, hids)) if a != b), None)}))
"""
for pat in ["ja", "gpt4", "ja-phrase", "ja-span"]:
    model = f"{out}/njp-{pat}"
    if not os.path.exists(model):
        continue
    for h in ["aozora", "wiki"]:
        text = f"{corpus}/heldout_{h}.txt"
        ids = f"{out}/ids-{pat}-{h}.bin"
        _, so, se, rc = run([encode_speed, model, text, "5", ids], env={"RAYON_NUM_THREADS": "1"})
        if rc:
            raise RuntimeError(se)
        mine = json.loads(so)
        _, so, se, rc = run([PY, "-c", f"MODEL={model!r}\nTEXT={text!r}\nIDS={ids!r}\n" + ENC_TIKTOKEN],
                            env={"RAYON_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})
        if rc:
            raise RuntimeError(se)
        theirs = json.loads(so)
        results["encode"][f"{pat} {h}"] = {"njp": mine, **theirs}
        print("encode", pat, h, mine, theirs, flush=True)
        json.dump(results, open(f"{out}/results.json", "w"), indent=1)

json.dump(results, open(f"{out}/results.json", "w"), indent=1)

# Markdown tables.
print()
print(f"| trainer | train s | peak RSS MiB | " + " | ".join(f"{h} B/tok" for h in HELD) + " | " +
      " | ".join(f"{h} ch/tok" for h in HELD) + " |")
print("|---|---:|---:|" + "---:|" * (2 * len(HELD)))
for name, r in results["train"].items():
    if r.get("timeout"):
        print(f"| {name} | timeout | | " + "| " * (2 * len(HELD)))
        continue
    bt = [held_stats[h]["bytes"] / r["held_tokens"][h] for h in HELD]
    ct = [held_stats[h]["chars"] / r["held_tokens"][h] for h in HELD]
    print(f"| {name} | {r['train_s']:.1f} | {r['rss_mib']:.0f} | " + " | ".join(f"{x:.3f}" for x in bt) + " | " +
          " | ".join(f"{x:.3f}" for x in ct) + " |")
print()
print("| encode (1 thread) | njp MB/s | tiktoken MB/s | speedup | HF (export) MB/s | ids = tiktoken | ids = HF |")
print("|---|---:|---:|---:|---:|---|---|")
for k, e in results["encode"].items():
    print(f"| {k} | {e['njp']['best_mb_s']:.1f} | {e['tiktoken_best_mb_s']:.1f} | "
          f"{e['njp']['best_mb_s'] / e['tiktoken_best_mb_s']:.2f}x | {e['hf_mb_s']:.1f} | {e['parity_tiktoken']} | {e['parity_hf']} |")
