#!/usr/bin/env bash
# tools/task_claims.sh: reproduces the tables of docs/tasks.md (GPT-1 fine-tuning vs scratch and
# lambda, GPT-2 zero-shot from a task description, GPT-3 few-shot accuracy against k) on the
# generated word-task corpus. Nothing is downloaded.
#   GPTX=build/release/gptx OUT=out-tasks THREADS=2 tools/task_claims.sh
set -euo pipefail
GPTX=${GPTX:-build/release/gptx}
OUT=${OUT:-out-tasks}
THREADS=${THREADS:-2}
ITERS=${ITERS:-400}
LIMIT=${LIMIT:-100}      # described zero-shot lines
FS_LIMIT=${FS_LIMIT:-50}  # test words per task elsewhere
T="--threads $THREADS"
mkdir -p "$OUT"
D=$OUT/tasks

echo "== task corpus"
"$GPTX" taskgen --out "$D" --seed 1 --documents 6000 --train-examples 500 --test-examples 200

echo "== pre-training (baby, char-level, context 128; the cosine runs over 800 steps, stopped at ITERS)"
[ -f "$OUT/pt/model.gptx" ] || "$GPTX" train --text "$D/corpus.txt" --tokenizer char --preset baby \
  --batch 8 --context 128 --iters "$ITERS" --decay-iters 800 --warmup 50 --lr 2e-3 --min-lr 2e-4 --eval-every 200 \
  --eval-iters 4 --log-every 50 --dropout 0 --seed 1 $T --out "$OUT/pt"

echo "== GPT-1: fine-tuning 'which task does this line show' (5 classes, chance 0.2)"
for run in "pt 0.5" "pt 0" "scratch 0.5" "scratch 0"; do
  set -- $run
  extra=""; [ "$1" = scratch ] && extra="--scratch"
  echo "-- $1, lambda $2"
  "$GPTX" finetune --checkpoint "$OUT/pt" --train "$D/which.train.jsonl" --test "$D/which.test.jsonl" \
    --lm-weight "$2" --lr 1e-3 --batch 32 --epochs 3 --seed 1 $extra $T --log-every 100 \
    --out "$OUT/ft-$1-$2" | grep -E "^(step [0-9]+:|test accuracy)"
done

echo "== GPT-2: zero-shot from the task stated in words (choices: the 5 tasks' answers, chance 0.2)"
"$GPTX" eval --checkpoint "$OUT/pt" --test "$D/described.test.jsonl" --format plain \
  --answer-context "=>" --limit "$LIMIT" $T
echo "-- open-ended, exact match: with the description vs without it"
desc_reverse="Task: write each word backwards."
desc_upper="Task: write each word in capital letters."
desc_first="Task: give the first letter of each word."
desc_last="Task: give the last letter of each word."
desc_twice="Task: write each word two times."
for t in reverse upper first last twice; do
  var=desc_$t
  echo "-- $t, described"
  "$GPTX" eval --checkpoint "$OUT/pt" --test "$D/$t.test.jsonl" --description "${!var}" \
    --limit "$FS_LIMIT" --max-tokens 12 $T | tail -1
  echo "-- $t, not described"
  "$GPTX" eval --checkpoint "$OUT/pt" --test "$D/$t.test.jsonl" --limit "$FS_LIMIT" --max-tokens 12 $T | tail -1
done

echo "== GPT-3: few-shot, no description, k demonstrations from the training split"
echo "-- multiple choice by likelihood (choices: the 5 tasks' answers, chance 0.2)"
for t in reverse upper first last twice; do
  echo "-- $t"
  "$GPTX" eval --checkpoint "$OUT/pt" --test "$D/$t.choice.test.jsonl" \
    --train "$D/$t.choice.train.jsonl" --format plain --answer-context "=>" --k 0,1,4,8 \
    --limit "$FS_LIMIT" $T | tail -12
done
echo "-- open-ended, greedy, exact match"
for t in reverse upper first last twice; do
  echo "-- $t"
  "$GPTX" eval --checkpoint "$OUT/pt" --test "$D/$t.test.jsonl" --train "$D/$t.train.jsonl" \
    --k 0,1,4,8 --limit "$FS_LIMIT" --max-tokens 12 $T | tail -4
done
