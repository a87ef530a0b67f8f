#!/usr/bin/env python3
"""PyTorch CPU reference of nanochat v1's GPT, Muon and AdamW (karpathy/nanochat @ 10231df,
nanochat/gpt.py and nanochat/muon.py), written from the port specification for side-by-side
comparison with the Rust/burn implementation in model/ and train/.

Modes:
  fixture OUT_DIR   tiny nanochat checkpoint (model_000000.pt + meta_000000.json, torch.save of
                    the state dict exactly as nanochat writes it) plus expected logits, for the
                    Rust import test.
  parity  OUT_DIR   random weights (no zero init, so every path carries signal) in
                    weights.safetensors + a batch in batch.json; writes reference.json with the
                    logits, the loss, and the loss after each of two optimizer steps.
  bench             tokens/s of forward+backward+Muon/AdamW steps for a given config.

Requires torch (CPU is enough) and safetensors.
"""

import argparse
import json
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def norm(x):
    return F.rms_norm(x, (x.size(-1),))


def apply_rotary_emb(x, cos, sin):
    d = x.shape[3] // 2
    x1, x2 = x[..., :d], x[..., d:]
    y1 = x1 * cos + x2 * sin
    y2 = x1 * (-sin) + x2 * cos
    return torch.cat([y1, y2], 3).to(x.dtype)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.n_head, self.n_kv_head, self.n_embd = cfg["n_head"], cfg["n_kv_head"], cfg["n_embd"]
        self.head_dim = self.n_embd // self.n_head
        self.c_q = nn.Linear(self.n_embd, self.n_head * self.head_dim, bias=False)
        self.c_k = nn.Linear(self.n_embd, self.n_kv_head * self.head_dim, bias=False)
        self.c_v = nn.Linear(self.n_embd, self.n_kv_head * self.head_dim, bias=False)
        self.c_proj = nn.Linear(self.n_embd, self.n_embd, bias=False)

    def forward(self, x, cos_sin):
        B, T, C = x.size()
        q = self.c_q(x).view(B, T, self.n_head, self.head_dim)
        k = self.c_k(x).view(B, T, self.n_kv_head, self.head_dim)
        v = self.c_v(x).view(B, T, self.n_kv_head, self.head_dim)
        cos, sin = cos_sin
        q, k = apply_rotary_emb(q, cos, sin), apply_rotary_emb(k, cos, sin)
        q, k = norm(q), norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        enable_gqa = self.n_head != self.n_kv_head
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=enable_gqa)
        y = y.transpose(1, 2).contiguous().view(B, T, -1)
        return self.c_proj(y)


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = nn.Linear(cfg["n_embd"], 4 * cfg["n_embd"], bias=False)
        self.c_proj = nn.Linear(4 * cfg["n_embd"], cfg["n_embd"], bias=False)

    def forward(self, x):
        return self.c_proj(F.relu(self.c_fc(x)).square())


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.attn = CausalSelfAttention(cfg)
        self.mlp = MLP(cfg)

    def forward(self, x, cos_sin):
        x = x + self.attn(norm(x), cos_sin)
        return x + self.mlp(norm(x))


def padded(v):
    return (v + 63) // 64 * 64


class GPT(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg
        V = padded(cfg["vocab_size"])
        self.transformer = nn.ModuleDict(
            {"wte": nn.Embedding(V, cfg["n_embd"]), "h": nn.ModuleList([Block(cfg) for _ in range(cfg["n_layer"])])}
        )
        self.lm_head = nn.Linear(cfg["n_embd"], V, bias=False)
        self.rotary_seq_len = cfg["sequence_len"] * 10
        cos, sin = self._precompute_rotary_embeddings(self.rotary_seq_len, cfg["n_embd"] // cfg["n_head"])
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def init_weights(self, zero_init=True):
        for m in self.modules():
            if isinstance(m, nn.Linear):
                fan_out, fan_in = m.weight.size(0), m.weight.size(1)
                std = 1.0 / math.sqrt(fan_in) * min(1.0, math.sqrt(fan_out / fan_in))
                torch.nn.init.normal_(m.weight, mean=0.0, std=std)
            elif isinstance(m, nn.Embedding):
                torch.nn.init.normal_(m.weight, mean=0.0, std=1.0)
        if zero_init:
            torch.nn.init.zeros_(self.lm_head.weight)
            for b in self.transformer.h:
                torch.nn.init.zeros_(b.mlp.c_proj.weight)
                torch.nn.init.zeros_(b.attn.c_proj.weight)

    @staticmethod
    def _precompute_rotary_embeddings(seq_len, head_dim, base=10000):
        channel_range = torch.arange(0, head_dim, 2, dtype=torch.float32)
        inv_freq = 1.0 / (base ** (channel_range / head_dim))
        t = torch.arange(seq_len, dtype=torch.float32)
        freqs = torch.outer(t, inv_freq)
        cos, sin = freqs.cos(), freqs.sin()
        cos, sin = cos.bfloat16(), sin.bfloat16()
        return cos[None, :, None, :], sin[None, :, None, :]

    def forward(self, idx, targets=None, loss_reduction="mean"):
        B, T = idx.size()
        cos_sin = self.cos[:, :T], self.sin[:, :T]
        x = norm(self.transformer.wte(idx))
        for block in self.transformer.h:
            x = block(x, cos_sin)
        x = norm(x)
        softcap = 15
        logits = self.lm_head(x)[..., : self.cfg["vocab_size"]].float()
        logits = softcap * torch.tanh(logits / softcap)
        if targets is not None:
            return F.cross_entropy(
                logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1, reduction=loss_reduction
            )
        return logits


def zeropower_via_newtonschulz5(G, steps, dtype):
    a, b, c = (3.4445, -4.7750, 2.0315)
    X = G.to(dtype)
    if G.size(-2) > G.size(-1):
        X = X.mT
    X = X / (X.norm(dim=(-2, -1), keepdim=True) + 1e-7)
    for _ in range(steps):
        A = X @ X.mT
        B = b * A + c * A @ A
        X = a * X + B @ X
    if G.size(-2) > G.size(-1):
        X = X.mT
    return X


class Muon(torch.optim.Optimizer):
    """nanochat v1 single-device Muon."""

    def __init__(self, params, lr=0.02, momentum=0.95, nesterov=True, ns_steps=5, ns_dtype=torch.bfloat16):
        super().__init__(params, dict(lr=lr, momentum=momentum, nesterov=nesterov, ns_steps=ns_steps))
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(g)
                buf = state["momentum_buffer"]
                buf.lerp_(g, 1 - group["momentum"])
                g = g.lerp_(buf, group["momentum"]) if group["nesterov"] else buf
                g = zeropower_via_newtonschulz5(g, group["ns_steps"], self.ns_dtype).to(p.dtype)
                p.add_(g, alpha=-group["lr"] * max(1, p.size(-2) / p.size(-1)) ** 0.5)


def setup_optimizers(model, ns_dtype, unembedding_lr=0.004, embedding_lr=0.2, matrix_lr=0.02):
    d = model.cfg["n_embd"]
    scale = (d / 768) ** -0.5
    groups = [
        dict(params=list(model.lm_head.parameters()), lr=unembedding_lr * scale),
        dict(params=list(model.transformer.wte.parameters()), lr=embedding_lr * scale),
    ]
    try:
        adamw = torch.optim.AdamW(groups, betas=(0.8, 0.95), eps=1e-10, weight_decay=0.0, fused=True)
    except (RuntimeError, TypeError):
        adamw = torch.optim.AdamW(groups, betas=(0.8, 0.95), eps=1e-10, weight_decay=0.0)
    muon = Muon(list(model.transformer.h.parameters()), lr=matrix_lr, momentum=0.95, ns_dtype=ns_dtype)
    return adamw, muon


def train_step(model, adamw, muon, x, y, step, grad_clip=None):
    loss = model(x, y)
    loss.backward()
    if grad_clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    frac = min(step / 300, 1)
    for group in muon.param_groups:
        group["momentum"] = (1 - frac) * 0.85 + frac * 0.95
    adamw.step()
    muon.step()
    model.zero_grad(set_to_none=True)
    return loss.item()


def cmd_parity(args):
    from safetensors.torch import save_file

    torch.manual_seed(args.seed)
    cfg = dict(sequence_len=args.seq_len, vocab_size=args.vocab, n_layer=args.depth, n_head=args.heads,
               n_kv_head=args.kv_heads, n_embd=args.width)
    model = GPT(cfg)
    model.init_weights(zero_init=False)
    for p in model.parameters():  # keep the logits well inside the softcap
        p.data.mul_(0.5)
    os.makedirs(args.out, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, os.path.join(args.out, "weights.safetensors"),
              metadata={"model_config": json.dumps(cfg)})
    g = torch.Generator().manual_seed(args.seed + 1)
    x = torch.randint(0, args.vocab, (args.batch, args.seq_len), generator=g)
    y = torch.randint(0, args.vocab, (args.batch, args.seq_len), generator=g)
    y[0, : args.seq_len // 4] = -1  # some ignored targets
    with open(os.path.join(args.out, "batch.json"), "w") as f:
        json.dump(dict(config=cfg, inputs=x.tolist(), targets=y.tolist()), f)
    ns_dtype = torch.float32 if args.ns_dtype == "float32" else torch.bfloat16
    with torch.no_grad():
        logits = model(x)
    adamw, muon = setup_optimizers(model, ns_dtype)
    losses = [train_step(model, adamw, muon, x, y, step) for step in range(args.steps)]
    with torch.no_grad():
        after = model(x, y).item()
    out = dict(logits=logits.flatten().tolist(), losses=losses, loss_after=after, ns_dtype=args.ns_dtype,
               torch=torch.__version__)
    with open(os.path.join(args.out, "reference.json"), "w") as f:
        json.dump(out, f)
    print(json.dumps(dict(loss_before=losses[0], loss_after=after)))


def cmd_fixture(args):
    torch.manual_seed(args.seed)
    cfg = dict(sequence_len=16, vocab_size=100, n_layer=2, n_head=2, n_kv_head=1, n_embd=32)
    model = GPT(cfg)
    model.init_weights(zero_init=False)
    os.makedirs(args.out, exist_ok=True)
    sd = model.state_dict()
    # nanochat keeps wte in bf16 on CUDA; store it that way to exercise the cast on import.
    sd["transformer.wte.weight"] = sd["transformer.wte.weight"].bfloat16()
    # torch.compile'd models carry this prefix in nanochat checkpoints.
    sd = {"_orig_mod." + k: v for k, v in sd.items()}
    torch.save(sd, os.path.join(args.out, "model_000007.pt"))
    meta = dict(step=7, val_bpb=1.5, model_config=cfg, user_config={}, device_batch_size=1, max_seq_len=16)
    with open(os.path.join(args.out, "meta_000007.json"), "w") as f:
        json.dump(meta, f, indent=2)
    model.transformer.wte.weight.data = model.transformer.wte.weight.data.bfloat16().float()
    ids = torch.tensor([[1, 5, 9, 42, 99, 0, 7, 3]])
    with torch.no_grad():
        logits = model(ids)
    with open(os.path.join(args.out, "expected_logits.json"), "w") as f:
        json.dump(dict(ids=ids.tolist(), logits=[round(v, 6) for v in logits.flatten().tolist()]), f)
    print("wrote", args.out)


def cmd_bench(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = dict(sequence_len=args.seq_len, vocab_size=args.vocab, n_layer=args.depth, n_head=args.heads,
               n_kv_head=args.kv_heads, n_embd=args.width)
    model = GPT(cfg)
    model.init_weights()
    ns_dtype = torch.float32 if args.ns_dtype == "float32" else torch.bfloat16
    adamw, muon = setup_optimizers(model, ns_dtype)
    x = torch.randint(0, args.vocab, (args.batch, args.seq_len))
    y = torch.randint(0, args.vocab, (args.batch, args.seq_len))
    for step in range(args.warmup):
        train_step(model, adamw, muon, x, y, step, grad_clip=1.0)
    t0 = time.perf_counter()
    for step in range(args.steps):
        train_step(model, adamw, muon, x, y, args.warmup + step, grad_clip=1.0)
    dt = (time.perf_counter() - t0) / args.steps
    tokens = args.batch * args.seq_len
    print(json.dumps(dict(tool="pytorch", torch=torch.__version__, threads=torch.get_num_threads(), step_s=dt,
                          tokens_per_s=tokens / dt, config=cfg, batch=args.batch)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["fixture", "parity", "bench"])
    ap.add_argument("--out", default=".")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--depth", type=int, default=4)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--ns-dtype", choices=["float32", "bfloat16"], default="float32")
    args = ap.parse_args()
    {"fixture": cmd_fixture, "parity": cmd_parity, "bench": cmd_bench}[args.mode](args)


if __name__ == "__main__":
    sys.exit(main())
