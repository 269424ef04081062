#!/usr/bin/env python3
"""bench/nanogpt_baby_reference.py: nanoGPT's shakespeare_char CPU "baby" run, in PyTorch.

The reference figure for `gptx train --preset baby` (issue 2). It follows nanoGPT's train.py with
config/train_shakespeare_char.py and the README's CPU overrides (4 layers, 4 heads, width 128,
context 64, batch 12, 2000 iters, lr 1e-3 cosine to 1e-4 over 2000 iters, warmup 100, weight decay
0.1, beta2 0.99, dropout 0, grad clip 1.0, no biases, eval every 250 steps over 20 batches), and
keeps nanoGPT's order of random draws: the modules are built and initialised in nanoGPT's order,
the first training batch is drawn before the loop, every evaluation draws its batches from the
same global generator as training, and the step-2000 evaluation is reported (after 2000 updates).

--gelu erf is nanoGPT's nn.GELU() (exact); --gelu tanh is GPT-2's approximation (gptx before the
shape's gelu field). Besides nanoGPT's 20-batch estimate it prints the loss over the whole
validation split: windows of --context tokens at 0, T, 2T, ... (the last one shorter), so every
val token after the first is predicted exactly once; `gptx train` prints the same figure.

Usage:
  nice -n 10 /usr/bin/python3 bench/nanogpt_baby_reference.py --text ../shared/data/tinyshakespeare.txt \
      [--seed 1337] [--gelu erf|tanh] [--threads 2] [--iters 2000]
The last line is one JSON object with the final figures.

Same init and data as gptx (so the two runs differ only by float rounding):
  build/release/gptx train ... --seed 1337 --iters 1 --lr 1e-30 --min-lr 0 --out /tmp/init
  python3 bench/nanogpt_baby_reference.py --init-from /tmp/init/model.gptx --batches gptx --seed 1337 \
      --loss-log losses.txt
(at lr 1e-30 the one step leaves every parameter as initialised).

nanoGPT's own stream in gptx (`gptx train --rng torch`) starts from the same weights:
  python3 bench/nanogpt_baby_reference.py --seed 1337 --dump-init /tmp/torch_init.f32
compares with the parameters of `gptx train ... --rng torch --seed 1337 --iters 1 --lr 1e-30 --min-lr 0`.
"""
import argparse
import json
import math
import os
import sys
import time


def parse():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--text", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data",
                                                    "tinyshakespeare.txt"))
    ap.add_argument("--seed", type=int, default=1337, help="torch.manual_seed (nanoGPT: 1337)")
    ap.add_argument("--gelu", choices=("erf", "tanh"), default="erf")
    ap.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--eval-every", type=int, default=250)
    ap.add_argument("--eval-iters", type=int, default=20)
    ap.add_argument("--batch", type=int, default=12)
    ap.add_argument("--context", type=int, default=64)
    ap.add_argument("--init-from", default="", help="start from the parameters of a gptx checkpoint (.gptx) "
                    "of the bias-free baby, e.g. one written by `gptx train --iters 1 --lr 1e-30`")
    ap.add_argument("--batches", choices=("torch", "gptx"), default="torch",
                    help="training batches from torch's generator (nanoGPT) or gptx's (xoshiro256** seeded "
                    "with --seed + 1, as `gptx train`), so both programs see the same data")
    ap.add_argument("--loss-log", default="", help="write each step's training loss here, one per line")
    ap.add_argument("--dump-init", default="", help="write the initial parameters here (float32, llm.c's "
                    "order without biases: wte, wpe, ln1w, qkvw, attprojw, ln2w, fcw, fcprojw, lnfw) and stop")
    return ap.parse_args()


def mix64(x):
    """splitmix64's finaliser, as gptx/core/rng.hpp."""
    m = (1 << 64) - 1
    x = (x + 0x9E3779B97F4A7C15) & m
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & m
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & m
    return x ^ (x >> 31)


class GptxRng:
    """xoshiro256** seeded as gptx::rng, with its below(n) (rejection, no modulo bias)."""
    M = (1 << 64) - 1

    def __init__(self, seed):
        self.s, x = [], seed & self.M
        for _ in range(4):
            x = mix64(x)
            self.s.append(x)

    def next_u64(self):
        s, M = self.s, self.M
        rotl = lambda x, k: ((x << k) | (x >> (64 - k))) & M
        result = (rotl((s[1] * 5) & M, 7) * 9) & M
        t = (s[1] << 17) & M
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return result

    def below(self, n):
        limit = self.M - (self.M % n)
        while True:
            x = self.next_u64()
            if x < limit:
                return x % n


def read_gptx_params(path):
    """The parameter block of a gptx checkpoint (layout in include/gptx/io/checkpoint.hpp)."""
    import struct
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"GPTXCKPT":
        sys.exit(f"nanogpt_baby_reference.py: {path}: not a gptx checkpoint")
    width, heads, layers, flags, vocab, context = struct.unpack_from("<iiiIii", data, 16)
    n, = struct.unpack_from("<Q", data, 40)
    tok_bytes, run_bytes = struct.unpack_from("<QQ", data, 64)
    at = 128 + tok_bytes + run_bytes + 6 * 8
    at = (at + 63) // 64 * 64
    return dict(width=width, heads=heads, layers=layers, flags=flags, vocab=vocab, context=context,
                n=n, offset=at, data=data)


def main():
    args = parse()
    # Debian's torch does its matrix products in OpenBLAS; its own threads must not fight ours.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # On a loaded machine spinning OpenMP workers make small elementwise ops 30x slower.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    B, T = args.batch, args.context
    n_layer, n_head, n_embd = 4, 4, 128
    lr_max, min_lr, warmup, decay_iters = 1e-3, 1e-4, 100, args.iters
    weight_decay, beta1, beta2, grad_clip = 0.1, 0.9, 0.99, 1.0

    # Data as nanoGPT's data/shakespeare_char/prepare.py: sorted unique characters, 90/10 split.
    try:
        with open(args.text, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        sys.exit(f"nanogpt_baby_reference.py: cannot read --text '{args.text}': {e.strerror}")
    if len(text) < 10 * (T + 1):
        sys.exit(f"nanogpt_baby_reference.py: {args.text} has {len(text)} characters; need at least {10 * (T + 1)}")
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    n = len(ids)
    splits = {"train": ids[: int(n * 0.9)], "val": ids[int(n * 0.9):]}
    V = len(chars)

    torch.manual_seed(args.seed)

    def get_batch(split):
        data = splits[split]
        ix = torch.randint(len(data) - T, (B,))
        x = torch.stack([torch.from_numpy(data[i:i + T].astype(np.int64)) for i in ix])
        y = torch.stack([torch.from_numpy(data[i + 1:i + 1 + T].astype(np.int64)) for i in ix])
        return x, y

    # The model, module for module as nanoGPT's model.py (bias=False, dropout 0: no dropout
    # modules, which draw nothing at p = 0 on a CPU).
    class LayerNorm(nn.Module):
        def __init__(self, C):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(C))

        def forward(self, x):
            return F.layer_norm(x, self.weight.shape, self.weight, None, 1e-5)

    class CausalSelfAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_attn = nn.Linear(n_embd, 3 * n_embd, bias=False)
            self.c_proj = nn.Linear(n_embd, n_embd, bias=False)
            self.register_buffer("mask", torch.tril(torch.ones(T, T)).view(1, 1, T, T))

        def forward(self, x):
            b, t, C = x.shape
            q, k, v = self.c_attn(x).split(C, dim=2)
            q, k, v = (z.view(b, t, n_head, C // n_head).transpose(1, 2) for z in (q, k, v))
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.mask[:, :, :t, :t] == 0, float("-inf"))
            y = F.softmax(att, dim=-1) @ v
            return self.c_proj(y.transpose(1, 2).contiguous().view(b, t, C))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.c_fc = nn.Linear(n_embd, 4 * n_embd, bias=False)
            self.gelu = nn.GELU(approximate="none" if args.gelu == "erf" else "tanh")
            self.c_proj = nn.Linear(4 * n_embd, n_embd, bias=False)

        def forward(self, x):
            return self.c_proj(self.gelu(self.c_fc(x)))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln_1 = LayerNorm(n_embd)
            self.attn = CausalSelfAttention()
            self.ln_2 = LayerNorm(n_embd)
            self.mlp = MLP()

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(V, n_embd),
                wpe=nn.Embedding(T, n_embd),
                h=nn.ModuleList([Block() for _ in range(n_layer)]),
                ln_f=LayerNorm(n_embd),
            ))
            self.lm_head = nn.Linear(n_embd, V, bias=False)
            self.transformer.wte.weight = self.lm_head.weight  # tied
            self.apply(self._init)  # children first, so lm_head's draw is the tied weight's last
            for name, p in self.named_parameters():
                if name.endswith("c_proj.weight"):
                    nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * n_layer))

        @staticmethod
        def _init(m):
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, 0.02)

        def forward(self, idx, targets):
            t = idx.shape[1]
            x = self.transformer.wte(idx) + self.transformer.wpe(torch.arange(0, t, dtype=torch.long))
            for blk in self.transformer.h:
                x = blk(x)
            logits = self.lm_head(self.transformer.ln_f(x))
            return F.cross_entropy(logits.view(-1, V), targets.reshape(-1))

    model = GPT()
    if args.init_from:
        ck = read_gptx_params(args.init_from)
        if (ck["width"], ck["heads"], ck["layers"], ck["flags"] & 3, ck["vocab"], ck["context"]) != \
                (n_embd, n_head, n_layer, 2, V, T):
            sys.exit(f"nanogpt_baby_reference.py: {args.init_from}: expected the bias-free pre-LN baby 128/4/4 "
                     f"with vocab {V}, context {T}; file has {ck['width']}/{ck['heads']}/{ck['layers']} flags "
                     f"{ck['flags']}, vocab {ck['vocab']}, context {ck['context']}")
        flat = torch.from_numpy(np.frombuffer(ck["data"], dtype="<f4", count=ck["n"], offset=ck["offset"]).copy())
        at = 0

        def take(*shape):
            nonlocal at
            k = math.prod(shape)
            t = flat[at:at + k].view(*shape)
            at += k
            return t

        L, C, h = n_layer, n_embd, model.transformer.h
        # llm.c's order without biases: wte, wpe, ln1w, qkvw, attprojw, ln2w, fcw, fcprojw, lnfw.
        with torch.no_grad():
            model.transformer.wte.weight.copy_(take(V, C))
            model.transformer.wpe.weight.copy_(take(T, C))
            for name, shape in (("ln_1", (C,)), ("attn.c_attn", (3 * C, C)), ("attn.c_proj", (C, C)),
                                ("ln_2", (C,)), ("mlp.c_fc", (4 * C, C)), ("mlp.c_proj", (C, 4 * C))):
                w = take(L, *shape)
                for l in range(L):
                    h[l].get_submodule(name).weight.copy_(w[l])
            model.transformer.ln_f.weight.copy_(take(C))
        assert at == ck["n"], (at, ck["n"])
    if args.dump_init:
        h = model.transformer.h
        parts = [model.transformer.wte.weight, model.transformer.wpe.weight]
        for name in ("ln_1", "attn.c_attn", "attn.c_proj", "ln_2", "mlp.c_fc", "mlp.c_proj"):
            parts += [blk.get_submodule(name).weight for blk in h]
        parts.append(model.transformer.ln_f.weight)
        with open(args.dump_init, "wb") as f:
            for p in parts:
                f.write(p.detach().numpy().astype("<f4").tobytes())
        ix = torch.randint(len(splits["train"]) - T, (B,)).tolist()  # what get_batch draws next
        print(f"initial parameters written to {args.dump_init}; the first training rows start at {ix}")
        return
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    nodecay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": nodecay, "weight_decay": 0.0}], lr=lr_max, betas=(beta1, beta2))

    def get_lr(it):
        if it < warmup:
            return lr_max * (it + 1) / (warmup + 1)
        if it > decay_iters:
            return min_lr
        ratio = (it - warmup) / (decay_iters - warmup)
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (lr_max - min_lr)

    @torch.no_grad()
    def estimate_loss():
        model.eval()
        out = {}
        for split in ("train", "val"):
            out[split] = sum(model(*get_batch(split)).item() for _ in range(args.eval_iters)) / args.eval_iters
        model.train()
        return out

    @torch.no_grad()
    def full_split_loss(data):
        """Mean loss over every prediction in `data`: windows at 0, T, 2T, ..., the last shorter."""
        model.eval()
        total, count = 0.0, 0
        starts = list(range(0, len(data) - 1, T))
        full = [s for s in starts if s + T + 1 <= len(data)]
        for k in range(0, len(full), B):
            rows = full[k:k + B]
            x = torch.stack([torch.from_numpy(data[s:s + T].astype(np.int64)) for s in rows])
            y = torch.stack([torch.from_numpy(data[s + 1:s + 1 + T].astype(np.int64)) for s in rows])
            total += model(x, y).item() * y.numel()
            count += y.numel()
        for s in starts[len(full):]:  # the shorter tail window
            x = torch.from_numpy(data[s:len(data) - 1].astype(np.int64)).view(1, -1)
            y = torch.from_numpy(data[s + 1:].astype(np.int64)).view(1, -1)
            total += model(x, y).item() * y.numel()
            count += y.numel()
        model.train()
        return total / count

    print(f"nanoGPT baby reference: torch {torch.__version__}, {torch.get_num_threads()} threads, gelu {args.gelu}, "
          f"seed {args.seed}, vocab {V}, {len(splits['train'])} train / {len(splits['val'])} val tokens", flush=True)
    if args.batches == "gptx":
        gen, train = GptxRng(args.seed + 1), splits["train"]

        def next_train():
            ix = [gen.below(len(train) - T) for _ in range(B)]
            x = torch.stack([torch.from_numpy(train[i:i + T].astype(np.int64)) for i in ix])
            y = torch.stack([torch.from_numpy(train[i + 1:i + 1 + T].astype(np.int64)) for i in ix])
            return x, y
    else:
        def next_train():
            return get_batch("train")
    losses = []
    X, Y = next_train()
    it, last = 0, {}
    t0 = time.time()
    while True:
        lr = get_lr(it)
        for g in opt.param_groups:
            g["lr"] = lr
        if it % args.eval_every == 0:
            last = estimate_loss()
            last["step"] = it
            print(f"step {it}: train loss {last['train']:.4f}, val loss {last['val']:.4f} "
                  f"({time.time() - t0:.0f} s)", flush=True)
        if it == args.iters:  # nanoGPT takes one more step and stops; it changes nothing reported
            break
        loss = model(X, Y)
        losses.append(loss.item())
        X, Y = next_train()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        it += 1
    train_secs = time.time() - t0
    if args.loss_log:
        with open(args.loss_log, "w") as f:
            f.write("".join(f"{v:.6f}\n" for v in losses))
    val_full = full_split_loss(splits["val"])
    print(f"val loss (full split) {val_full:.4f}; {args.iters} steps in {train_secs:.1f} s", flush=True)
    print(json.dumps({"impl": "pytorch " + torch.__version__, "gelu": args.gelu, "seed": args.seed,
                      "step": last["step"], "train_loss": round(last["train"], 4),
                      "val_loss": round(last["val"], 4), "val_loss_full": round(val_full, 4),
                      "train_seconds": round(train_secs, 1), "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
