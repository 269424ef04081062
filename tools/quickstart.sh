#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run the main demo — train a
# small character-level GPT on text every Debian machine has (its licence texts), then sample.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh release
corpus=build/release/demo-corpus.txt
cat /usr/share/common-licenses/{GPL-3,LGPL-2.1,GFDL-1.3,Apache-2.0,MPL-2.0,Artistic} > "$corpus"
echo "== training a 128/4/4 GPT on $(wc -c < "$corpus") bytes of licence text (about 20 s on 2 cores)"
build/release/gptx train --text "$corpus" --tokenizer char --preset baby --batch 12 --context 64 \
  --iters 1500 --lr 1e-3 --min-lr 1e-4 --warmup 100 --beta2 0.99 --eval-every 500 --eval-iters 20 \
  --log-every 100 --out build/release/demo-run
echo "== sampling"
build/release/gptx sample --checkpoint build/release/demo-run --prompt "This License" --tokens 400 \
  --temperature 0.8 --top-k 40 --seed 7
