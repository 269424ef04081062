#!/usr/bin/env python3
"""bench/pytorch_reference.py: the workloads of `gptx bench`, timed the same way in PyTorch.

The model is GPT-2 written out here in the style of nanoGPT (pre-LN blocks, tied LM head, GELU
with the tanh approximation, optional biases), so nothing is downloaded. Each workload runs in its
own child process, so peak_rss_mb (ru_maxrss) is that workload's own high-water mark, and the
child prints one JSON line with the same keys and the same FLOP count as `gptx bench`:

  train-gpt2            GPT-2 small (768/12/12, vocab 50257), B4 T64: forward, backward,
                        grad-norm clip 1.0, AdamW; random init, one fixed batch of random tokens
  train-baby            128/4/4, vocab 65, B12 T64 (nanoGPT's shakespeare_char CPU config,
                        no biases, exact erf GELU, as nanoGPT trains it)
  train-gpt2-long       GPT-2 small, B4 T1024
  generate-gpt2         16-token random prompt, 128 new tokens, batch 1, with a KV cache,
                        temperature 0.8, top-k 200
  generate-gpt2-batch8  the same with 8 sequences

Threads. Debian's torch runs its own ops on OpenMP threads (torch.set_num_threads) and its
matrix products in OpenBLAS (pthreads, OPENBLAS_NUM_THREADS, read when the library loads). When
both use every core they fight over them. --threads-mode picks one setting:
  omp2-blas1   torch.set_num_threads(T), OPENBLAS_NUM_THREADS=1
  omp1-blas2   torch.set_num_threads(1), OPENBLAS_NUM_THREADS=T
  omp2-blas2   both T (Debian's default when nothing is set)
  best         (default) each mode first times --probe (train-gpt2, 3 reps) and the fastest
               mode is used for every workload; each line names it in "threads_mode".
Usage:
  /usr/bin/python3 bench/pytorch_reference.py [--workload NAME|all] [--reps N] [--warmup N]
      [--threads 2] [--threads-mode best|omp2-blas1|omp1-blas2|omp2-blas2] [--only-probe]
      [--precision fp32|bf16]

--precision bf16 runs the forward passes (and the loss) under
torch.autocast("cpu", dtype=torch.bfloat16), the backward outside it, as PyTorch's mixed-precision
recipe does: fp32 master weights and optimizer; the matrix products in bf16 through oneDNN where
the CPU has AVX512-BF16 or AMX. It is the counterpart of `gptx --precision bf16 bench`.
"""
import contextlib
import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time

# name: (train, B, T, reps, warmup); generation: B sequences, T new tokens. Same as gptx bench.
WORKLOADS = {
    "train-gpt2": (True, 4, 64, 10, 2),
    "train-baby": (True, 12, 64, 50, 5),
    "generate-gpt2": (False, 1, 128, 5, 1),
    "generate-gpt2-batch8": (False, 8, 128, 5, 1),
    "train-gpt2-long": (True, 4, 1024, 3, 1),
}
PROMPT_LEN = 16
MODES = ("omp2-blas1", "omp1-blas2", "omp2-blas2")


def model_shape(workload):
    """(width, heads, layers, vocab, context, bias)"""
    if workload == "train-baby":
        return 128, 4, 4, 65, 64, False
    return 768, 12, 12, 50257, 1024, True


# ---- FLOP counts: the formulas of samples/cli/bench.hpp -------------------------------------
def matmul_params(C, L, V):
    """The weights of the matrix products: the tied head (V*C) and 12*C*C per layer."""
    return V * C + L * 12 * C * C


def train_flops(C, L, V, B, T):
    return B * T * (6 * matmul_params(C, L, V) + 12.0 * L * C * T)


def generate_flops(C, L, V, B, P, fresh):
    fed = P + fresh - 1
    keys = fed * (fed + 1) / 2
    return B * (2 * matmul_params(C, L, V) * fed + 4.0 * L * C * keys)


# ---- the model (child processes only: torch is imported after the thread variables are set) --
def build_model(torch, C, NH, L, V, maxT, bias, gelu="tanh"):
    """gelu: "tanh" (GPT-2) or "none" (exact erf, nn.GELU()'s default, as nanoGPT)."""
    nn = torch.nn
    F = torch.nn.functional

    class LayerNorm(nn.Module):
        def __init__(self, C):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(C))
            self.bias = nn.Parameter(torch.zeros(C)) if bias else None

        def forward(self, x):
            return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(C, 3 * C, bias=bias)
            self.proj = nn.Linear(C, C, bias=bias)
            mask = torch.tril(torch.ones(maxT, maxT, dtype=torch.bool))
            self.register_buffer("mask", mask, persistent=False)

        def forward(self, x, cache=None, t0=0):
            B, T, _ = x.shape
            q, k, v = self.qkv(x).split(C, dim=2)
            q, k, v = (z.view(B, T, NH, C // NH).transpose(1, 2) for z in (q, k, v))  # (B, NH, T, HS)
            if cache is not None:  # write the new keys and values, attend over all t0 + T
                kc, vc = cache
                kc[:, :, t0:t0 + T] = k
                vc[:, :, t0:t0 + T] = v
                k, v = kc[:, :, :t0 + T], vc[:, :, :t0 + T]
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(C // NH))
            if T > 1:
                att = att.masked_fill(~self.mask[t0:t0 + T, :t0 + T], float("-inf"))
            y = F.softmax(att, dim=-1) @ v
            return self.proj(y.transpose(1, 2).contiguous().view(B, T, C))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.attn, self.ln2 = LayerNorm(C), Attention(), LayerNorm(C)
            self.fc = nn.Linear(C, 4 * C, bias=bias)
            self.fcproj = nn.Linear(4 * C, C, bias=bias)

        def forward(self, x, cache=None, t0=0):
            x = x + self.attn(self.ln1(x), cache, t0)
            return x + self.fcproj(F.gelu(self.fc(self.ln2(x)), approximate=gelu))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(maxT, C)
            self.blocks = nn.ModuleList(Block() for _ in range(L))
            self.lnf = LayerNorm(C)
            self.head = nn.Linear(C, V, bias=False)
            self.head.weight = self.wte.weight  # tied
            for name, p in self.named_parameters():  # GPT-2 init
                if name.endswith("proj.weight"):
                    nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * L))
                elif p.dim() == 2:
                    nn.init.normal_(p, 0.0, 0.02)
                elif name.endswith("bias"):
                    nn.init.zeros_(p)

        def forward(self, idx, targets=None, caches=None, t0=0):
            B, T = idx.shape
            pos = torch.arange(t0, t0 + T, dtype=torch.long)
            x = self.wte(idx) + self.wpe(pos)
            for i, blk in enumerate(self.blocks):
                x = blk(x, None if caches is None else caches[i], t0)
            x = self.lnf(x)
            if targets is None:  # generation: the last position's logits only
                return self.head(x[:, -1, :])
            logits = self.head(x)
            return F.cross_entropy(logits.view(-1, V), targets.view(-1))

    return GPT()


def run_child(args):
    import torch

    torch.set_num_threads(args.omp_threads)
    torch.manual_seed(args.seed)
    train, B, T, reps, warmup = WORKLOADS[args.workload]
    reps = args.reps or reps
    warmup = warmup if args.warmup is None else args.warmup
    C, NH, L, V, maxT, bias = model_shape(args.workload)
    if args.workload == "train-baby":
        maxT = T
    model = build_model(torch, C, NH, L, V, maxT, bias, "none" if args.workload == "train-baby" else "tanh")
    ms = []
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if args.precision == "bf16"
                else contextlib.nullcontext())
    if train:
        decay = [p for p in model.parameters() if p.dim() >= 2]
        rest = [p for p in model.parameters() if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": rest, "weight_decay": 0.0}],
                                lr=6e-4, betas=(0.9, 0.95), eps=1e-8)
        x = torch.randint(0, V, (B, T))
        y = torch.randint(0, V, (B, T))

        def step():
            with autocast:
                loss = model(x, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)

        tokens, flops = B * T, train_flops(C, L, V, B, T)
    else:
        model.eval()
        prompts = torch.randint(0, V, (B, PROMPT_LEN))
        HS = C // NH
        caches = [(torch.zeros(B, NH, PROMPT_LEN + T, HS), torch.zeros(B, NH, PROMPT_LEN + T, HS)) for _ in range(L)]

        def step():
            with torch.inference_mode(), autocast:
                logits = model(prompts, caches=caches, t0=0)
                t0 = PROMPT_LEN
                for i in range(T):
                    v, _ = torch.topk(logits, 200)
                    logits = (logits / 0.8).masked_fill(logits < v[:, [-1]], float("-inf"))
                    nxt = torch.multinomial(torch.softmax(logits, dim=-1), 1)
                    if i + 1 < T:  # the last drawn token is never fed
                        logits = model(nxt, caches=caches, t0=t0)
                        t0 += 1

        tokens, flops = B * T, generate_flops(C, L, V, B, PROMPT_LEN, T)
    for _ in range(warmup):
        step()
    for _ in range(reps):
        t = time.perf_counter()
        step()
        ms.append((time.perf_counter() - t) * 1000.0)
    med = statistics.median(ms)
    line = {
        "workload": args.workload,
        "median_ms": med,
        "min_ms": min(ms),
        "max_ms": max(ms),
        "tokens_per_s": tokens / (med / 1000.0),
        "gflops": flops / (med / 1000.0) / 1e9,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        "reps": reps,
        "threads": args.threads,
        "impl": "pytorch " + torch.__version__,
        "threads_mode": args.mode,
        "precision": args.precision,
    }
    print(json.dumps(line), flush=True)


def spawn(args, workload, mode, reps=None, warmup=None):
    """Runs one workload in a child with the thread setting of `mode`; returns its JSON line."""
    omp, blas = {"omp2-blas1": (args.threads, 1), "omp1-blas2": (1, args.threads),
                 "omp2-blas2": (args.threads, args.threads)}[mode]
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(blas), OMP_NUM_THREADS=str(omp))
    cmd = [sys.executable, os.path.abspath(__file__), "--child", "--workload", workload, "--mode", mode,
           "--omp-threads", str(omp), "--threads", str(args.threads), "--seed", str(args.seed),
           "--precision", args.precision]
    if reps:
        cmd += ["--reps", str(reps)]
    if warmup is not None:
        cmd += ["--warmup", str(warmup)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workload", default="all")
    ap.add_argument("--reps", type=int, default=0, help="timed repetitions (default: per workload)")
    ap.add_argument("--warmup", type=int, default=None, help="untimed repetitions (default: per workload)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--threads-mode", default="best", choices=("best",) + MODES)
    ap.add_argument("--probe", default="train-gpt2", help="workload that picks the best thread mode")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--only-probe", action="store_true", help="print the best thread mode and exit")
    ap.add_argument("--precision", default="fp32", choices=("fp32", "bf16"),
                    help="bf16: forward passes under torch.autocast(\"cpu\", dtype=torch.bfloat16)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--mode", default="", help=argparse.SUPPRESS)
    ap.add_argument("--omp-threads", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return run_child(args)
    names = list(WORKLOADS) if args.workload == "all" else [args.workload]
    for n in names:
        if n not in WORKLOADS:
            sys.exit(f"pytorch_reference.py: unknown workload '{n}' (choose all or one of: {', '.join(WORKLOADS)})")
    mode = args.threads_mode
    if mode == "best":
        probes = {m: spawn(args, args.probe, m, reps=3, warmup=1) for m in MODES}
        for m, j in probes.items():
            print(f"# probe {args.probe} {m}: median {j['median_ms']:.1f} ms", file=sys.stderr, flush=True)
        mode = min(probes, key=lambda m: probes[m]["median_ms"])
        print(f"# best thread mode: {mode}", file=sys.stderr, flush=True)
    if args.only_probe:
        print(mode)
        return
    for n in names:
        print(json.dumps(spawn(args, n, mode, args.reps or None, args.warmup)), flush=True)


if __name__ == "__main__":
    main()
