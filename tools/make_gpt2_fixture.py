#!/usr/bin/env python3
"""Writes tests/fixtures/gpt2_tiny/: a tiny random GPT-2 in Hugging Face's layout
(model.safetensors + config.json) and in llm.c's (model_llmc.bin), with reference logits and
loss for a fixed batch, for tests/io/test_import.cpp.

GPT-2 is written out here (no transformers import): Conv1D weights stored (in, out) as Hugging
Face stores them, tanh GELU, LayerNorm eps 1e-5, tied LM head. The safetensors and llm.c files are
written by hand (the safetensors package may be absent).
Usage (Debian: apt-get install python3-torch): /usr/bin/python3 tools/make_gpt2_fixture.py
"""
import json
import math
import os
import struct

import torch

C, NH, L, V, MAXT = 64, 4, 2, 317, 64  # width, heads, layers, vocab, context: gptx presets::tiny
B, T = 2, 32                            # the reference batch
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "gpt2_tiny")


class Conv1D(torch.nn.Module):
    """Hugging Face's Conv1D: y = x @ W + b with W stored (in, out)."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.empty(n_in, n_out))
        self.bias = torch.nn.Parameter(torch.empty(n_out))

    def forward(self, x):
        return x @ self.weight + self.bias


def gelu(x):  # GPT-2's tanh approximation ("gelu_new")
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x.pow(3))))


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = torch.nn.LayerNorm(C, eps=1e-5)
        self.c_attn = Conv1D(C, 3 * C)
        self.c_proj = Conv1D(C, C)
        self.ln_2 = torch.nn.LayerNorm(C, eps=1e-5)
        self.c_fc = Conv1D(C, 4 * C)
        self.mlp_proj = Conv1D(4 * C, C)

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (z.view(b, t, NH, C // NH).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) / math.sqrt(C // NH)
        mask = torch.tril(torch.ones(t, t, dtype=torch.bool))
        att = att.masked_fill(~mask, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(b, t, C)
        x = x + self.c_proj(y)
        return x + self.mlp_proj(gelu(self.c_fc(self.ln_2(x))))


class GPT2(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Parameter(torch.empty(V, C))
        self.wpe = torch.nn.Parameter(torch.empty(MAXT, C))
        self.h = torch.nn.ModuleList(Block() for _ in range(L))
        self.ln_f = torch.nn.LayerNorm(C, eps=1e-5)

    def forward(self, idx):
        x = self.wte[idx] + self.wpe[: idx.shape[1]]
        for block in self.h:
            x = block(x)
        return self.ln_f(x) @ self.wte.t()  # tied head


def tensors(m):
    """Hugging Face GPT-2 names -> tensors (Conv1D weights already (in, out))."""
    out = {"wte.weight": m.wte, "wpe.weight": m.wpe}
    for i, b in enumerate(m.h):
        p = f"h.{i}."
        out.update({
            p + "ln_1.weight": b.ln_1.weight, p + "ln_1.bias": b.ln_1.bias,
            p + "attn.c_attn.weight": b.c_attn.weight, p + "attn.c_attn.bias": b.c_attn.bias,
            p + "attn.c_proj.weight": b.c_proj.weight, p + "attn.c_proj.bias": b.c_proj.bias,
            p + "ln_2.weight": b.ln_2.weight, p + "ln_2.bias": b.ln_2.bias,
            p + "mlp.c_fc.weight": b.c_fc.weight, p + "mlp.c_fc.bias": b.c_fc.bias,
            p + "mlp.c_proj.weight": b.mlp_proj.weight, p + "mlp.c_proj.bias": b.mlp_proj.bias,
        })
    out.update({"ln_f.weight": m.ln_f.weight, "ln_f.bias": m.ln_f.bias})
    return out


def f32_bytes(t):
    flat = t.detach().contiguous().view(-1).tolist()
    return struct.pack("<%df" % len(flat), *flat)


def write_safetensors(path, named):
    header, blobs, at = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in named.items():
        data = f32_bytes(t)
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [at, at + len(data)]}
        blobs.append(data)
        at += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def write_llmc(path, m, vp):
    """llm.c's write_model: header, then params in llm.c order, Linear weights (out, in)."""
    header = [0] * 256
    header[:8] = [20240326, 3, MAXT, V, L, NH, C, vp]
    wte = torch.cat([m.wte, torch.zeros(vp - V, C)])
    per_layer = lambda f: torch.stack([f(b) for b in m.h])
    params = [
        wte, m.wpe,
        per_layer(lambda b: b.ln_1.weight), per_layer(lambda b: b.ln_1.bias),
        per_layer(lambda b: b.c_attn.weight.t()), per_layer(lambda b: b.c_attn.bias),
        per_layer(lambda b: b.c_proj.weight.t()), per_layer(lambda b: b.c_proj.bias),
        per_layer(lambda b: b.ln_2.weight), per_layer(lambda b: b.ln_2.bias),
        per_layer(lambda b: b.c_fc.weight.t()), per_layer(lambda b: b.c_fc.bias),
        per_layer(lambda b: b.mlp_proj.weight.t()), per_layer(lambda b: b.mlp_proj.bias),
        m.ln_f.weight, m.ln_f.bias,
    ]
    with open(path, "wb") as f:
        f.write(struct.pack("<256i", *header))
        for p in params:
            f.write(f32_bytes(p))


def main():
    torch.manual_seed(1234)
    m = GPT2()
    with torch.no_grad():  # larger than GPT-2's init so every parameter visibly matters
        for name, t in tensors(m).items():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
                t.copy_(1.0 + 0.1 * torch.randn_like(t))
            elif name.endswith(".bias"):
                t.copy_(0.05 * torch.randn_like(t))
            elif name in ("wte.weight", "wpe.weight"):
                t.copy_(0.1 * torch.randn_like(t))
            else:
                t.copy_(0.08 * torch.randn_like(t))
    g = torch.Generator().manual_seed(99)
    seq = torch.randint(0, V, (B, T + 1), generator=g)
    x, y = seq[:, :T], seq[:, 1:]
    with torch.no_grad():
        logits = m(x)
        loss = torch.nn.functional.cross_entropy(logits.view(-1, V), y.reshape(-1)).item()

    os.makedirs(OUT, exist_ok=True)
    write_safetensors(os.path.join(OUT, "model.safetensors"), tensors(m))
    write_llmc(os.path.join(OUT, "model_llmc.bin"), m, vp=384)
    config = {"model_type": "gpt2", "vocab_size": V, "n_positions": MAXT, "n_embd": C,
              "n_layer": L, "n_head": NH, "activation_function": "gelu_new",
              "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True}
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    with open(os.path.join(OUT, "reference_logits.bin"), "wb") as f:
        f.write(f32_bytes(logits))  # (B, T, V) float32 little-endian
    ref = {"B": B, "T": T, "V": V, "inputs": x.tolist(), "targets": y.tolist(), "loss": loss,
           "torch": torch.__version__}
    with open(os.path.join(OUT, "reference.json"), "w") as f:
        json.dump(ref, f)
        f.write("\n")
    print(f"wrote {OUT}: loss {loss:.6f}")


if __name__ == "__main__":
    main()
