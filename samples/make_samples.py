#!/usr/bin/env python3
"""Regenerates the bundled samples from ../shared/data (a development script; users never run it).

Every output keeps its upstream license; see ATTRIBUTION.md. Conversions:
- conversations.jsonl: RealPersonaChat dialogues 1..N. The first speaker becomes `user`, the
  second `assistant`; consecutive utterances of one speaker are joined with a newline; a
  trailing user turn is dropped so every conversation ends with the assistant. OpenAI format.
- mc.jsonl: the first rows of JCommonsenseQA v1.3 train, unchanged (JSON Lines).
- math.jsonl: MAWPS-ja (chain-of-thought-ja-dataset) with the `問題：`/`解答：` frame removed and a
  GSM8K-style calculator solution *synthesized*: the shortest arithmetic expression over the
  numbers in the question that equals the reference answer, written as `<<expr=result>>`.
  Items without such an expression are skipped. The expression can match by coincidence.
- documents.jsonl: the first Aozora Bunko documents (public domain) up to a size budget.
"""
import itertools
import json
import re
import sys
from fractions import Fraction
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
OUT = Path(__file__).resolve().parent


def conversations(n=150):
    d = SHARED / "real-persona-chat" / "real_persona_chat" / "dialogues"
    out = []
    for path in sorted(d.glob("*.json"))[:n]:
        dlg = json.loads(path.read_text(encoding="utf-8"))
        a, b = dlg["interlocutors"]
        msgs = []
        for u in dlg["utterances"]:
            role = "user" if u["interlocutor_id"] == a else "assistant"
            if msgs and msgs[-1]["role"] == role:
                msgs[-1]["content"] += "\n" + u["text"]
            else:
                msgs.append({"role": role, "content": u["text"]})
        if msgs and msgs[0]["role"] != "user":
            msgs = msgs[1:]
        if msgs and msgs[-1]["role"] == "user":
            msgs = msgs[:-1]
        out.append({"id": f"rpc-{dlg['dialogue_id']:05d}", "messages": msgs, "source": "real-persona-chat v1.0.0"})
    return out


def mc(n=500):
    lines = (SHARED / "JGLUE" / "jcommonsenseqa-v1.3" / "train-v1.3.json").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines[:n]]


NUM = re.compile(r"\d+(?:\.\d+)?")


def to_text(x):
    if isinstance(x, Fraction):
        if x.denominator == 1:
            return str(x.numerator)
        return repr(float(x))
    return str(x)


def synth(question, answer):
    nums = [Fraction(s) for s in NUM.findall(question.translate(str.maketrans("０１２３４５６７８９．", "0123456789.")))]
    nums = list(dict.fromkeys(nums))
    target = Fraction(answer)
    ops = ["+", "-", "*", "/"]

    def ev(a, op, b):
        if op == "+":
            return a + b
        if op == "-":
            return a - b
        if op == "*":
            return a * b
        return a / b if b != 0 else None

    def show(x):
        return to_text(x)

    for a, b in itertools.permutations(nums, 2):
        for op in ops:
            v = ev(a, op, b)
            if v is not None and abs(float(v) - float(target)) < 1e-9:
                return f"{show(a)}{op}{show(b)}", v
    for a, b, c in itertools.permutations(nums, 3):
        for op1, op2 in itertools.product(ops, ops):
            for left in (True, False):
                if left:
                    x = ev(a, op1, b)
                    v = None if x is None else ev(x, op2, c)
                    expr = f"({show(a)}{op1}{show(b)}){op2}{show(c)}"
                else:
                    x = ev(b, op2, c)
                    v = None if x is None else ev(a, op1, x)
                    expr = f"{show(a)}{op1}({show(b)}{op2}{show(c)})"
                if v is not None and abs(float(v) - float(target)) < 1e-9:
                    return expr, v
    return None


def python_result(expr):
    # What Python prints for the expression, as nanochat's calculator would.
    return repr(eval(expr, {"__builtins__": {}}, {}))


def math(n=300):
    items = json.loads((SHARED / "chain-of-thought-ja-dataset" / "dataset" / "mawps" / "test.json").read_text(encoding="utf-8"))
    out, skipped = [], 0
    for it in items:
        if len(out) >= n:
            break
        q = it["question"].removeprefix("問題：").removesuffix("\n解答：").strip()
        found = synth(q, it["answer"])
        if not found:
            skipped += 1
            continue
        expr, _ = found
        result = python_result(expr)
        if result.endswith(".0"):
            result = result[:-2]
        out.append({
            "id": f"mawps-ja-{it['idx']}",
            "question": q,
            "solution": f"式は {expr} です。{expr} = <<{expr}={result}>>{result}",
            "answer": it["answer"],
            "source": "chain-of-thought-ja-dataset/mawps (solution synthesized)",
        })
    print(f"math: kept {len(out)}, skipped {skipped} without a matching expression", file=sys.stderr)
    return out


def documents(budget_chars=600_000):
    out, total = [], 0
    with (SHARED / "aozora" / "aozora_soseki_akutagawa.jsonl").open(encoding="utf-8") as f:
        for i, line in enumerate(f):
            d = json.loads(line)
            if len(d["text"]) > 60_000:
                continue  # keep the sample small and varied
            out.append({"id": f"aozora-{i}", "text": d["text"], "title": d["title"], "author": d["card_author"], "source": d["source"]})
            total += len(d["text"])
            if total >= budget_chars:
                break
    return out


def write(name, rows):
    with (OUT / name).open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"{name}: {len(rows)} rows", file=sys.stderr)


if __name__ == "__main__":
    write("conversations.jsonl", conversations())
    write("mc.jsonl", mc())
    write("math.jsonl", math())
    write("documents.jsonl", documents())
