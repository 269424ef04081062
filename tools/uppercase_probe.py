#!/usr/bin/env python3
"""Probes whether a reward model can judge the letter map of `uppercase` prompts (docs/pipeline.md,
"Can the reward model learn the letter map?"). From a `gptx pipeline` folder it writes:

  probe_train.jsonl, probe_val.jsonl  ranked comparisons [right answer, one letter changed, two
                                      changed] of uppercase prompts, on words of the folder's
                                      training prompts; none is a word of its held-out prompts
                                      (evaluation and RM), and the validation words are not the
                                      probe's training words
  probe_held_out_{A,B,C}.jsonl        the folder's held-out uppercase pairs (comparisons_val.jsonl)
                                      by what they compare: A the right answer against a near miss
                                      (same length, capitals only), B two near misses, C the rest
  probe_references.jsonl              the folder's comparisons.jsonl with the right answer ranked
                                      first wherever the labeler's ranking lacks it (a reference
                                      among the ranked responses, as Stiennon et al. 2020 mixed
                                      reference summaries into theirs)

Usage: tools/uppercase_probe.py FOLDER OUT [--train 12000] [--val 600] [--seed 7]
Then train and score with gptx rm (--evaluate scores a file with a trained model).
"""
import argparse
import itertools
import json
import pathlib
import random
import re

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
WORD = re.compile(r"Q: (?:uppercase|reverse|length of|first letter of|last letter of) ([a-z]+)\n")


def words_of(path):
    out = set()
    for line in open(path):
        m = WORD.match(json.loads(line)["prompt"])
        if m:
            out.add(m.group(1))
    return out


def changed(word, n, rng):
    w = list(word)
    for i in rng.sample(range(len(w)), min(n, len(w))):
        w[i] = rng.choice([c for c in LETTERS if c != w[i]])
    return "".join(w)


def write_probe(words, n, path, rng):
    with open(path, "w") as f:
        for _ in range(n):
            w = rng.choice(words)
            right = w.upper()
            ranked = [right, changed(right, 1, rng), changed(right, 2, rng)]
            f.write(json.dumps({"prompt": f"Q: uppercase {w}\nA: ", "responses": ranked}) + "\n")


def right_answer(prompt):
    ins = prompt[len("Q: "):].split("\nA:")[0]
    w = ins.split()
    if w[0] == "uppercase":
        return " ".join(w[1:]).upper()
    if w[0] == "reverse":
        return " ".join(w[1:])[::-1]
    if w[0] == "sort":
        return " ".join(sorted(w[1:]))
    if w[0] == "add":
        return str(int(w[1]) + int(w[3]))
    if ins.startswith("length of "):
        return str(len(w[2]))
    if ins.startswith("first letter of "):
        return w[3][0]
    if ins.startswith("last letter of "):
        return w[3][-1]
    raise SystemExit(f"uppercase_probe: '{ins}' is not an instruction of the task family")


def with_references(path, out):
    added = 0
    with open(out, "w") as f:
        for line in open(path):
            c = json.loads(line)
            right = right_answer(c["prompt"])
            if right not in c["responses"]:  # the labeler ranks it above all else
                c["responses"] = [right] + c["responses"][:8]
                added += 1
            f.write(json.dumps(c) + "\n")
    print(f"references added to {added} prompts' rankings")


def split_held_out(path, out):
    kinds = {"A": [], "B": [], "C": []}
    for line in open(path):
        c = json.loads(line)
        if not c["prompt"].startswith("Q: uppercase "):
            continue
        right = c["prompt"][len("Q: uppercase "):].split("\n")[0].upper()
        near = lambda s: len(s) == len(right) and s.isalpha() and s.isupper()
        for better, worse in itertools.combinations(c["responses"], 2):
            kind = "A" if better == right and near(worse) else "B" if near(better) and near(worse) else "C"
            kinds[kind].append({"prompt": c["prompt"], "chosen": better, "rejected": worse})
    for kind, pairs in kinds.items():
        with open(out / f"probe_held_out_{kind}.jsonl", "w") as f:
            f.writelines(json.dumps(p) + "\n" for p in pairs)
        print(f"held-out uppercase pairs {kind}: {len(pairs)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=pathlib.Path)
    ap.add_argument("out", type=pathlib.Path)
    ap.add_argument("--train", type=int, default=12000)
    ap.add_argument("--val", type=int, default=600)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(a.seed)
    seen = set()
    for name in ("rm_prompts.jsonl", "ppo_prompts.jsonl", "sft.jsonl"):
        seen |= words_of(a.folder / name)
    held_out = words_of(a.folder / "eval_prompts.jsonl")
    held_out |= words_of(a.folder / "comparisons_val.jsonl")
    words = sorted(seen - held_out)
    rng.shuffle(words)
    n_val = len(words) // 10
    write_probe(words[n_val:], a.train, a.out / "probe_train.jsonl", rng)
    write_probe(words[:n_val], a.val, a.out / "probe_val.jsonl", rng)
    print(f"{len(words) - n_val} training words, {n_val} validation words")
    split_held_out(a.folder / "comparisons_val.jsonl", a.out)
    with_references(a.folder / "comparisons.jsonl", a.out / "probe_references.jsonl")


if __name__ == "__main__":
    main()
