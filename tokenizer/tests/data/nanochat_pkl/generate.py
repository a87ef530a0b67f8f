"""Regenerates the nanochat `tokenizer.pkl` fixtures in this directory.

Trains rustbpe on the first works of ../aozora_sample.jsonl plus a little English, builds the
tiktoken Encoding exactly as nanochat's RustBPETokenizer does, and pickles it the way nanochat's
`save()` does (`pickle.dump(enc, f)`) under several protocols. `expected.json` holds tiktoken's
`encode_ordinary` ids for fixed texts, which the Rust tests compare against.

    python tokenizer/tests/data/nanochat_pkl/generate.py   # needs rustbpe and tiktoken
"""

import json
import os
import pickle

import rustbpe
import tiktoken

HERE = os.path.dirname(os.path.abspath(__file__))

# nanochat/tokenizer.py
SPLIT_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,2}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""
SPECIAL_TOKENS = [
    "<|bos|>",
    "<|user_start|>",
    "<|user_end|>",
    "<|assistant_start|>",
    "<|assistant_end|>",
    "<|python_start|>",
    "<|python_end|>",
    "<|output_start|>",
    "<|output_end|>",
]
# rustbpe's own default (GPT-4 with digit groups of 3): loaded as a custom regex.
RUSTBPE_GPT4_PATTERN = r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+"""

ENGLISH = [
    "The quick brown fox jumps over the lazy dog. It's 12345 o'clock, isn't it?",
    "I am a cat. As yet I have no name. I've no idea where I was born.",
    "Tokenizers split text into chunks, then merge byte pairs by rank.",
] * 20

TEXTS = [
    "吾輩は猫である。名前はまだ無い。どこで生れたかとんと見当がつかぬ。",
    "The quick brown fox jumps over the lazy dog. It's 2024 and we've got 1234567 tokens!",
    "東京タワーは1958年に完成した。  カタカナ、ひらがな、漢字 —  mixed 日本語 and English\n\n\tdone.",
    "<|bos|>特殊トークンの文字列は普通の文字です<|assistant_end|>",
    "絵文字🍣🍺と半角ｶﾅ、全角ＡＢＣ１２３",
]


def docs():
    with open(os.path.join(HERE, "..", "aozora_sample.jsonl"), encoding="utf-8") as f:
        works = [json.loads(line)["text"] for line in f]
    for text in works[:6]:
        yield from (p for p in text.split("\n") if p)
    yield from ENGLISH


def encoding(vocab_size, pattern, specials):
    # nanochat RustBPETokenizer.train_from_iterator
    tok = rustbpe.Tokenizer()
    tok.train_from_iterator(docs(), vocab_size - len(specials), pattern=pattern)
    mergeable_ranks = {bytes(k): v for k, v in tok.get_mergeable_ranks()}
    offset = len(mergeable_ranks)
    special_tokens = {name: offset + i for i, name in enumerate(specials)}
    return tiktoken.Encoding(
        name="rustbpe",
        pat_str=tok.get_pattern(),
        mergeable_ranks=mergeable_ranks,
        special_tokens=special_tokens,
    )


def write(sub, enc, protocol=None):
    # nanochat's save() is `pickle.dump(enc, f)`: the default protocol, 4 on Python 3.8-3.13
    # and 5 from 3.14.
    d = os.path.join(HERE, sub)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer.pkl"), "wb") as f:
        pickle.dump(enc, f, protocol=protocol)


def expected(enc):
    cases = []
    for t in TEXTS:
        ids = enc.encode_ordinary(t)
        assert enc.decode(ids) == t
        cases.append({"text": t, "ids": ids})
    return {
        "n_vocab": enc.n_vocab,
        "special_tokens": enc._special_tokens,
        "cases": cases,
    }


class Evil:
    """Pickles as a call to os.system: a loader that executes pickles would run it."""

    def __reduce__(self):
        return (os.system, ("echo pickle-was-executed > njp-pickle-was-executed",))


def main():
    nano = encoding(1024, SPLIT_PATTERN, SPECIAL_TOKENS)
    for p in (2, 3, 4, 5):
        write(f"protocol{p}", nano, p)
    custom = encoding(600, RUSTBPE_GPT4_PATTERN, ["<|endoftext|>"])
    write("custom", custom)
    out = {
        "pickle_default_protocol": pickle.DEFAULT_PROTOCOL,
        "tiktoken": tiktoken.__version__ if hasattr(tiktoken, "__version__") else "unknown",
        "nanochat": expected(nano),
        "custom": expected(custom),
    }
    with open(os.path.join(HERE, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")
    with open(os.path.join(HERE, "evil.pkl"), "wb") as f:
        pickle.dump({"name": "rustbpe", "pat_str": Evil()}, f)


if __name__ == "__main__":
    main()
