#!/usr/bin/env python3
"""tools/torch_rng_golden.py: the PyTorch values that tests/core/test_torch_rng.cpp and
tests/nn/test_nanogpt_init.cpp expect from gptx's torch_generator and init_like_nanogpt.

Needs PyTorch (Debian's python3-torch; the tests' values come from 1.13):
  /usr/bin/python3 tools/torch_rng_golden.py
"""
import math

import torch
import torch.nn as nn


def generator_values():
    torch.manual_seed(1337)
    a = torch.empty(40).normal_(0.5, 2.0)
    print("normal_(40, 0.5, 2):", [a[i].item() for i in (0, 7, 8, 15, 23, 24, 39)])
    b = torch.empty(3).normal_(1.0, 0.5)
    c = torch.empty(1).normal_(0.0, 1.0)
    print("normal_(3, 1, 0.5):", b.tolist(), "then normal_(1):", c.item())
    print("uniform_(4, -0.25, 0.75):", torch.empty(4).uniform_(-0.25, 0.75).tolist())
    print("randint(1003790, (6,)):", torch.randint(1003790, (6,)).tolist())
    print("randint(2**33 + 5, (2,)):", torch.randint(2**33 + 5, (2,)).tolist())


class LayerNorm(nn.Module):  # nanoGPT's: ones and zeros, no draws
    def __init__(self, C, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(C))
        self.bias = nn.Parameter(torch.zeros(C)) if bias else None


class Block(nn.Module):  # nanoGPT's module order; forward is not needed
    def __init__(self, C, bias):
        super().__init__()
        self.ln_1 = LayerNorm(C, bias)
        self.attn = nn.Module()
        self.attn.c_attn = nn.Linear(C, 3 * C, bias=bias)
        self.attn.c_proj = nn.Linear(C, C, bias=bias)
        self.ln_2 = LayerNorm(C, bias)
        self.mlp = nn.Module()
        self.mlp.c_fc = nn.Linear(C, 4 * C, bias=bias)
        self.mlp.c_proj = nn.Linear(4 * C, C, bias=bias)


class GPT(nn.Module):  # nanoGPT's GPT.__init__
    def __init__(self, V, block, C, L, bias):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(V, C), wpe=nn.Embedding(block, C),
            h=nn.ModuleList([Block(C, bias) for _ in range(L)]), ln_f=LayerNorm(C, bias)))
        self.lm_head = nn.Linear(C, V, bias=False)
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(self._init_weights)
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * L))

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)


def init_values(name, V, block, C, L, bias, randint_range):
    torch.manual_seed(1337)
    m = GPT(V, block, C, L, bias)
    h = m.transformer.h
    # gptx's tensors (llm.c's order), stacked over layers.
    tensors = {"wte": m.transformer.wte.weight, "wpe": m.transformer.wpe.weight,
               "qkvw": torch.stack([b.attn.c_attn.weight for b in h]),
               "attprojw": torch.stack([b.attn.c_proj.weight for b in h]),
               "fcw": torch.stack([b.mlp.c_fc.weight for b in h]),
               "fcprojw": torch.stack([b.mlp.c_proj.weight for b in h])}
    print(f"{name} (V {V}, block {block}, C {C}, L {L}, bias {bias}), first and last:")
    for k, t in tensors.items():
        f = t.detach().flatten()
        print(f"  {k}: {f[0].item()!r}, {f[-1].item()!r}")
    print("  then randint(%d, (12,)):" % randint_range, torch.randint(randint_range, (12,)).tolist())


if __name__ == "__main__":
    generator_values()
    # nanoGPT's shakespeare_char baby; its training split has 1,003,854 tokens, T = 64.
    init_values("baby", 65, 64, 128, 4, False, 1003854 - 64)
    # Biases, and tensors whose sizes are not multiples of 16 (normal_'s tail).
    init_values("odd", 67, 9, 20, 2, True, 1000)
