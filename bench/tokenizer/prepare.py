#!/usr/bin/env python3
"""Builds the benchmark corpus from ../shared/data (or $NJP_SHARED_DATA).

Outputs (in the directory given as argv[2]):
  train.txt          one document per line: every Japanese text in shared/data except the held-out
                     parts below (Aozora paragraphs, JGLUE/JMMLU/JEMHopQA/CoT/MGSM sentences, chat
                     utterances, persona profiles, UD sentences)
  heldout_aozora.txt every 20th Aozora work (by file order), one paragraph per line (literary)
  heldout_wiki.txt   JSQuAD v1.3 valid contexts, title prefix removed (Wikipedia); never trained on
                     (its questions are excluded from train.txt too)
  heldout_chat.txt   RealPersonaChat dialogues with id >= 950 (conversation)
  corpus.json        characters, bytes and SHA-256 of each file
Newlines are removed from documents so that every tool sees the same documents (one per line).
"""
import csv, glob, hashlib, json, os, sys

data, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
train, held = [], {"aozora": [], "wiki": [], "chat": []}


def lines(text):
    return [l.strip() for l in text.split("\n") if l.strip()]


docs = [json.loads(l) for l in open(f"{data}/aozora/aozora_soseki_akutagawa.jsonl", encoding="utf-8")]
for i, d in enumerate(docs):
    (held["aozora"] if i % 20 == 19 else train).extend(lines(d["text"]))

def jl(p):
    return [json.loads(l) for l in open(p, encoding="utf-8")]

for p in sorted(glob.glob(f"{data}/JGLUE/jsts-v1.3/*.json")) + [f"{data}/JGLUE/jnli-v1.3/valid-v1.3.json"]:
    for d in jl(p):
        train += [d["sentence1"], d["sentence2"]]
for p in sorted(glob.glob(f"{data}/JGLUE/jcommonsenseqa-v1.3/*.json")):
    for d in jl(p):
        train.append(d["question"] + " " + " ".join(d[f"choice{k}"] for k in range(5)))
sq = json.load(open(f"{data}/JGLUE/jsquad-v1.3/valid-v1.3.json", encoding="utf-8"))
for a in sq["data"]:
    for p in a["paragraphs"]:
        held["wiki"].extend(lines(p["context"].split(" [SEP] ", 1)[-1]))
for p in sorted(glob.glob(f"{data}/JMMLU/JMMLU/*.csv")):
    for r in csv.reader(open(p, encoding="utf-8-sig")):
        train.extend(lines(" ".join(r[:5])))
for p in sorted(glob.glob(f"{data}/JEMHopQA/corpus_ver1.2/*.json")):
    for d in json.load(open(p, encoding="utf-8")):
        train.append(d["question"] + " " + str(d["answer"]))
for p in sorted(glob.glob(f"{data}/real-persona-chat/real_persona_chat/dialogues/*.json")):
    d = json.load(open(p, encoding="utf-8"))
    dest = held["chat"] if d["dialogue_id"] >= 950 else train
    dest.extend(t for u in d["utterances"] for t in lines(u["text"]))
for v in json.load(open(f"{data}/real-persona-chat/real_persona_chat/interlocutors.json", encoding="utf-8")).values():
    train.extend(v["persona"])
for l in open(f"{data}/UD_Japanese-GSD/ja_gsd-ud-dev.conllu", encoding="utf-8"):
    if l.startswith("# text = "):
        train.append(l[9:].strip())
for p in sorted(glob.glob(f"{data}/chain-of-thought-ja-dataset/dataset/*/test.json")):
    for d in json.load(open(p, encoding="utf-8")):
        train.extend(lines(d["question"] + " " + str(d["answer"])))
for l in open(f"{data}/url-nlp/mgsm/mgsm_ja.tsv", encoding="utf-8"):
    train.extend(lines(l.replace("\t", " ")))

meta = {}
for name, rows in [("train", train)] + [(f"heldout_{k}", v) for k, v in held.items()]:
    text = "".join(r + "\n" for r in rows if r)
    b = text.encode("utf-8")
    open(f"{out}/{name}.txt", "wb").write(b)
    meta[name] = {"docs": sum(1 for r in rows if r), "chars": len(text) - text.count("\n"),
                  "bytes": len(b) - text.count("\n"), "sha256": hashlib.sha256(b).hexdigest()}
json.dump(meta, open(f"{out}/corpus.json", "w"), indent=1)
print(json.dumps(meta, indent=1))
