#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run the main demo — the
# InstructGPT pipeline on the project's own task family (pre-training -> SFT -> reward model ->
# PPO -> PPO-ptx, judged by a programmatic labeler). Nothing is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh release
out=build/release/pipeline-demo
echo "== gptx pipeline: pre-training, SFT, reward model, PPO, PPO-ptx, DPO, GRPO and RLOO, then the dialogue stage (about 20 minutes on 2 cores)"
build/release/gptx pipeline --out "$out"
echo
echo "== held-out prompts and the responses of SFT, PPO and PPO-ptx (more in $out/eval_samples.txt)"
head -n 16 "$out/eval_samples.txt"
