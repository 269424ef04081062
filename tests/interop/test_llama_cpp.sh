#!/usr/bin/env bash
# tests/interop/test_llama_cpp.sh: llama.cpp itself runs what gptx writes (issue #22). CTest's
# interop_llama_cpp runs it:
#   test_llama_cpp.sh GPTX GPTX_INTEROP_REFERENCE SRC_DIR WORK_DIR DATA_DIR CXX
# 1. installs node-llama-cpp 3.21.1 (prebuilt llama.cpp) under WORK_DIR once;
# 2. pre-trains a tiny GPT-2-tokenized model on tiny Shakespeare with `gptx train` and exports it
#    with `gptx export` as F32 and F16 GGUF;
# 3. llama.cpp must tokenize each prompt as gptx does, continue it greedily for 32 tokens exactly
#    as gptx does (F32 and F16), and give next-token log-probabilities within 1e-3 of gptx's (F32,
#    with an F32 KV cache; llama.cpp's CPU GELU rounds through an F16 table, which alone moves
#    them by some 1e-4); the F16 file runs with llama.cpp's defaults (F16 KV cache); the
#    same for a randomly initialised model, whose continuations change token more often;
# 4. llama.cpp's own writer (llama_model_quantize from the shipped libllama) rewrites the F32 file
#    as F32 and as Q8_0, and gptx loads both: identical log-probabilities for the F32 rewrite,
#    within 0.1 for Q8_0.
# Exit 77 (CTest: Skipped) with the reason when node, npm or the shared data are missing.
set -euo pipefail
gptx=$1 reference=$2 src=$3 work=$4 data=$5 cxx=$6

skip() {
    echo "SKIPPED: $*"
    exit 77
}
command -v node >/dev/null || skip "node is not installed (llama.cpp runs through node-llama-cpp)"
command -v npm >/dev/null || skip "npm is not installed (it installs node-llama-cpp)"
for f in tinyshakespeare.txt gpt2/encoder.json gpt2/vocab.bpe; do
    [[ -f $data/$f ]] || skip "needs $data/$f (set GPTX_DATA_DIR)"
done

mkdir -p "$work"
npm_dir=$work/npm
installed=$(node -p 'require(process.argv[1]).version' \
    "$npm_dir/node_modules/node-llama-cpp/package.json" 2>/dev/null || true)
if [[ $installed != 3.21.1 ]]; then
    echo "== installing node-llama-cpp 3.21.1 into $npm_dir (once per build tree)"
    mkdir -p "$npm_dir"
    [[ -f $npm_dir/package.json ]] || echo '{"name": "gptx-interop", "private": true}' >"$npm_dir/package.json"
    (cd "$npm_dir" && npm i -E node-llama-cpp@3.21.1 --no-audit --no-fund)
fi
cp "$src/check_llama_cpp.mjs" "$npm_dir/" # node resolves the package from the script's folder

# Trained again only when gptx or this script is newer than the model (a minute on an idle
# 2-core machine, many under load).
if [[ ! $work/run/model.gptx -nt $gptx || ! $work/run/model.gptx -nt ${BASH_SOURCE[0]} ]]; then
    echo "== pre-training a tiny GPT-2-tokenized model on tiny Shakespeare"
    rm -rf "$work/run"
    "$gptx" train --text "$data/tinyshakespeare.txt" --tokenizer gpt2 --vocab-dir "$data/gpt2" \
        --preset tiny --context 64 --batch 8 --iters 200 --lr 3e-3 --warmup 20 --eval-every 200 \
        --eval-iters 4 --log-every 100 --seed 1 --threads 2 --out "$work/run"
fi
"$gptx" export --checkpoint "$work/run" --format gguf --out "$work/model-f32.gguf"
"$gptx" export --checkpoint "$work/run" --format gguf --dtype f16 --out "$work/model-f16.gguf"

echo "== gptx reads back what it wrote"
"$reference" --compare "$work/run/model.gptx" "$work/model-f32.gguf" "$src/prompts.json" |
    tee "$work/compare.txt"
grep -q "difference: 0$" "$work/compare.txt"
"$reference" --random "$data/gpt2" "$work/random"
for model in model random; do
    "$reference" "$work/$model-f32.gguf" "$src/prompts.json" "$work/$model-ref-f32.json"
    "$reference" "$work/$model-f16.gguf" "$src/prompts.json" "$work/$model-ref-f16.json"
    echo "== llama.cpp runs $model-f32.gguf"
    (cd "$npm_dir" && node check_llama_cpp.mjs "$work/$model-f32.gguf" "$work/$model-ref-f32.json" 1e-3 f32)
    # gptx's reference for F16 is the F16 file as gptx reads it; llama.cpp also rounds
    # activations to F16 for F16 matrices, so log-probabilities only loosely agree.
    echo "== llama.cpp runs $model-f16.gguf"
    (cd "$npm_dir" && node check_llama_cpp.mjs "$work/$model-f16.gguf" "$work/$model-ref-f16.json" 1e-2 default)
done

echo "== llama.cpp's own writer: llama_model_quantize to F32 and Q8_0, read by gptx"
lib=$npm_dir/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64
bundle=$npm_dir/node_modules/node-llama-cpp/llama/gitRelease.bundle
[[ -f $lib/libllama.v0.4.0.so ]] || { echo "FAILED: no libllama in $lib"; exit 1; }
rm -rf "$work/llama-src" "$work/llama-headers"
git clone -q --bare "$bundle" "$work/llama-src"
mkdir -p "$work/llama-headers"
git --git-dir="$work/llama-src" archive HEAD include ggml/include | tar -x -C "$work/llama-headers"
"$cxx" -std=c++17 -I"$work/llama-headers/include" -I"$work/llama-headers/ggml/include" \
    "$src/llama_quantize.cpp" -o "$work/llama_quantize" "$lib/libllama.v0.4.0.so" -Wl,-rpath,"$lib"
"$work/llama_quantize" "$work/model-f32.gguf" "$work/llama-f32.gguf" f32 >"$work/quantize.log" 2>&1
"$work/llama_quantize" "$work/model-f32.gguf" "$work/llama-q8_0.gguf" q8_0 >>"$work/quantize.log" 2>&1
"$reference" --compare "$work/model-f32.gguf" "$work/llama-f32.gguf" "$src/prompts.json" |
    tee "$work/compare.txt"
grep -q "difference: 0$" "$work/compare.txt"
"$reference" --compare "$work/model-f32.gguf" "$work/llama-q8_0.gguf" "$src/prompts.json" |
    tee "$work/compare.txt"
awk '/difference/ { exit !($NF < 0.1) }' "$work/compare.txt"
echo "PASSED: llama.cpp runs gptx's GGUF (F32, F16) as gptx does, and gptx reads llama.cpp's"
