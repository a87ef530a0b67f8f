"""Generates the mixture benchmark inputs from ../shared/data (JSON lines, stdlib only).

docs.jsonl  ~500K documents: Aozora paragraphs and JGLUE / RealPersonaChat texts, cycled with
            distinct ids and four `source` labels, so filters and sampling have work to do.
convs.jsonl N conversations from RealPersonaChat dialogues (user/assistant alternating).
"""
import json
import os
import sys

data, out, n_docs, n_convs = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
os.makedirs(out, exist_ok=True)

texts = []
with open(os.path.join(data, "aozora", "aozora_soseki_akutagawa.jsonl"), encoding="utf-8") as fh:
    for line in fh:
        for para in json.loads(line)["text"].split("\n"):
            if len(para) >= 10:
                texts.append(para[:4000])
jcqa = os.path.join(data, "JGLUE", "jcommonsenseqa-v1.3", "train-v1.3.json")
with open(jcqa, encoding="utf-8") as fh:
    for line in fh:
        v = json.loads(line)
        texts.append(v["question"] + " " + "、".join(v[f"choice{i}"] for i in range(5)))
if not texts:
    sys.exit("no texts found under " + data)

sources = ["aozora", "jglue", "chat", "web"]
with open(os.path.join(out, "docs.jsonl"), "w", encoding="utf-8") as fh:
    for i in range(n_docs):
        t = texts[i % len(texts)]
        fh.write(json.dumps({"id": f"d{i:07d}", "text": f"{t}（{i}）", "source": sources[i % 4]},
                            ensure_ascii=False) + "\n")

# Conversations: RealPersonaChat dialogues as alternating user/assistant turns.
dialogues = []
rpc = os.path.join(data, "real-persona-chat")
for root, _, files in sorted(os.walk(rpc)):
    for f in sorted(files):
        if not f.endswith(".json"):
            continue
        try:
            v = json.load(open(os.path.join(root, f), encoding="utf-8"))
        except ValueError:
            continue
        utts = v.get("utterances") if isinstance(v, dict) else None
        if not utts:
            continue
        turns, last = [], None
        for u in utts:
            sp, text = u.get("interlocutor_id"), u.get("text", "")
            if sp == last and turns:
                turns[-1] += "\n" + text
            else:
                turns.append(text)
            last = sp
        if len(turns) % 2:
            turns.pop()
        if turns:
            dialogues.append(turns)
if not dialogues:  # fall back to the bundled samples
    for line in open("samples/conversations.jsonl", encoding="utf-8"):
        dialogues.append([m["content"] for m in json.loads(line)["messages"]])
with open(os.path.join(out, "convs.jsonl"), "w", encoding="utf-8") as fh:
    for i in range(n_convs):
        d = dialogues[i % len(dialogues)]
        msgs = [{"role": "user" if j % 2 == 0 else "assistant", "content": t} for j, t in enumerate(d)]
        fh.write(json.dumps({"id": f"c{i:07d}", "messages": msgs}, ensure_ascii=False) + "\n")
print(f"{n_docs} documents from {len(texts)} texts, {n_convs} conversations from {len(dialogues)} dialogues")
