#!/usr/bin/env bash
# tools/task_claims.sh: reproduces the tables of docs/tasks.md (GPT-1 fine-tuning vs scratch and
# lambda, GPT-2 zero-shot from a task description, GPT-3 few-shot accuracy against k) on the
# generated word-task corpus. Nothing is downloaded.
#   GPTX=build/release/gptx OUT=out-tasks THREADS=1 tools/task_claims.sh
# Every table is also written as plain text under $OUT (gpt1.txt, gpt2.txt, gpt3.txt); the raw
# per-run fine-tuning accuracies are in $OUT/gpt1.runs.
set -euo pipefail
GPTX=${GPTX:-build/release/gptx}
OUT=${OUT:-out-tasks}
THREADS=${THREADS:-1}
ITERS=${ITERS:-4000}      # pre-training steps (the cosine decays over the same number)
SIZES=${SIZES:-"100 200 500 1000"}  # labelled training examples for the GPT-1 table
SEEDS=${SEEDS:-"1 2 3 4 5"}   # fine-tuning seeds (new rows, head, shuffling, dropout)
LR=${LR:-1e-3}            # fine-tuning peak lr, both trunks (see the lr check below)
LONG_EPOCHS=${LONG_EPOCHS:-10}
ZS_LIMIT=${ZS_LIMIT:-1000} # described zero-shot lines
FS_LIMIT=${FS_LIMIT:-200}  # held-out words per task for zero-/few-shot
T="--threads $THREADS"
mkdir -p "$OUT"
D=$OUT/tasks
start=$(date +%s)

echo "== task corpus"
"$GPTX" taskgen --out "$D" --seed 1 --documents 6000 --train-examples 1000 --test-examples 1000
# Smaller labelled sets are prefixes of the 1000-line file (each contains the smaller ones; the
# longer runs always use all 1000), and the which-task test lines split by class for the
# per-class accuracies.
for n in $SIZES 1000; do head -n "$n" "$D/which.train.jsonl" > "$D/which.train$n.jsonl"; done
for c in 0 1 2 3 4; do grep "\"label\":$c," "$D/which.test.jsonl" > "$D/which.test.class$c.jsonl"; done

echo "== pre-training (baby, char-level, context 128, $ITERS steps of batch 8, cosine to 2e-4)"
[ -f "$OUT/pt/model.gptx" ] || "$GPTX" train --text "$D/corpus.txt" --tokenizer char --preset baby \
  --batch 8 --context 128 --iters "$ITERS" --decay-iters "$ITERS" --warmup 100 --lr 2e-3 --min-lr 2e-4 \
  --eval-every 1000 --eval-iters 8 --log-every 500 --dropout 0 --seed 1 $T --out "$OUT/pt" | grep -v "^train:"

# ft TAG N TRUNK LAMBDA SEED EPOCHS LR [TEST]: fine-tunes on the first N which-task lines and
# appends "TAG N TRUNK LAMBDA SEED EPOCHS LR acc_epoch0 ... acc_final" to $OUT/gpt1.runs
# (epoch 0 is the untrained head).
ft() {
  local tag=$1 n=$2 trunk=$3 lambda=$4 seed=$5 epochs=$6 lr=$7 test=${8:-$D/which.test.jsonl} extra=""
  [ "$trunk" = scratch ] && extra="--scratch"
  local accs
  accs=$("$GPTX" finetune --checkpoint "$OUT/pt" --train "$D/which.train$n.jsonl" --test "$test" \
    --lm-weight "$lambda" --lr "$lr" --batch 32 --epochs "$epochs" --seed "$seed" $extra $T \
    --log-every 100000 --out "$OUT/ft" | sed -n 's/^step [0-9]*: test accuracy //p' | tr '\n' ' ')
  echo "$tag $n $trunk $lambda $seed $epochs $lr $accs" | tee -a "$OUT/gpt1.runs"
}
# summary TAG: per (n, trunk, lambda), the final accuracy per seed and its mean, then the paired
# differences pretrained - scratch and lambda 0.5 - 0 (same seeds), with a t interval over seeds.
summary() {
  awk -v tag="$1" '
    function tq(df) { return df==1?12.706:df==2?4.303:df==3?3.182:df==4?2.776:df==5?2.571:df<=9?2.262:2.0 }
    function diff(name, a, b,    i, d, m, v, k) {
      m = 0; k = 0
      for (i = 1; i <= ns; ++i) if ((a, seeds[i]) in acc && (b, seeds[i]) in acc) { d[++k] = acc[a, seeds[i]] - acc[b, seeds[i]]; m += d[k] }
      if (k == 0) return
      m /= k; v = 0; for (i = 1; i <= k; ++i) v += (d[i] - m)^2
      line = sprintf("%-34s %+.3f", name, m)
      if (k > 1) line = line sprintf("  [%+.3f, %+.3f]", m - tq(k-1)*sqrt(v/(k-1)/k), m + tq(k-1)*sqrt(v/(k-1)/k))
      line = line "  per seed:"; for (i = 1; i <= k; ++i) line = line sprintf(" %+.3f", d[i])
      print line
    }
    $1 == tag { key = $2 " " $3 " " $4; acc[key, $5] = $NF; if (!(key in seen)) { seen[key] = 1; keys[++nk] = key }
                if (!($5 in sseen)) { sseen[$5] = 1; seeds[++ns] = $5 } if (!($2 in nseen)) { nseen[$2] = 1; sizes[++nn] = $2 } }
    END {
      printf "%-5s %-10s %-4s %-7s %s\n", "n", "trunk", "lambda", "mean", "per seed (final held-out accuracy)"
      for (j = 1; j <= nk; ++j) {
        split(keys[j], f, " "); m = 0; s = ""
        for (i = 1; i <= ns; ++i) { m += acc[keys[j], seeds[i]]; s = s sprintf(" %.3f", acc[keys[j], seeds[i]]) }
        printf "%-5s %-10s %-6s %.3f  %s\n", f[1], f[2], f[3], m / ns, s
      }
      print "differences (mean over seeds, 95% t interval over seeds, per seed):"
      for (j = 1; j <= nn; ++j) {
        n = sizes[j]
        diff("n " n ": pretrained - scratch, l 0.5", n " pt 0.5", n " scratch 0.5")
        diff("n " n ": pretrained - scratch, l 0", n " pt 0", n " scratch 0")
        diff("n " n ": l 0.5 - l 0, pretrained", n " pt 0.5", n " pt 0")
        diff("n " n ": l 0.5 - l 0, scratch", n " scratch 0.5", n " scratch 0")
      }
    }' "$OUT/gpt1.runs"
}
rm -f "$OUT/gpt1.runs"

echo "== GPT-1: fine-tuning on 'which task does this line show' (5 classes, chance 0.2), 1000 held-out lines"
echo "-- lr check, n = 100, seed 1, 3 epochs (lambda 0.5); columns: held-out accuracy after epochs 0..3"
for lr in 1e-4 3e-4 1e-3 3e-3; do
  for trunk in pt scratch; do ft lr 100 $trunk 0.5 1 3 $lr; done
done
echo "-- GPT-1's schedule: batch 32, 3 epochs, warmup 0.2%, linear decay, lr $LR; columns: epochs 0..3"
for n in $SIZES; do for seed in $SEEDS; do for trunk in pt scratch; do for lambda in 0.5 0; do
  ft short "$n" $trunk $lambda "$seed" 3 "$LR"
done; done; done; done
echo "-- longer: n = 1000, $LONG_EPOCHS epochs; columns: epochs 0..$LONG_EPOCHS"
for seed in $SEEDS; do for trunk in pt scratch; do for lambda in 0.5 0; do
  ft long 1000 $trunk $lambda "$seed" "$LONG_EPOCHS" "$LR"
done; done; done
echo "-- per class (n = 1000, seed 1): accuracy on the test lines of each class"
for cfg in "short 3 pt 0.5" "short 3 scratch 0.5" "long $LONG_EPOCHS pt 0.5" "long $LONG_EPOCHS pt 0" \
           "long $LONG_EPOCHS scratch 0.5"; do
  set -- $cfg
  for c in 0 1 2 3 4; do
    ft "class$c-$1-$3-$4" 1000 "$3" "$4" 1 "$2" "$LR" "$D/which.test.class$c.jsonl" > /dev/null
  done
done
{
  echo "GPT-1, 3 epochs, lr $LR"; summary short
  echo; echo "GPT-1, n = 1000, $LONG_EPOCHS epochs, lr $LR"; summary long
  echo; echo "per class, n = 1000, seed 1 (classes: reverse upper first last twice)"
  for cfg in "short pt 0.5" "short scratch 0.5" "long pt 0.5" "long pt 0" "long scratch 0.5"; do
    set -- $cfg; printf "%-6s %-8s %-4s" "$1" "$2" "$3"
    for c in 0 1 2 3 4; do printf " %s" "$(awk -v t="class$c-$1-$2-$3" '$1 == t { print $NF }' "$OUT/gpt1.runs")"; done
    echo
  done
} | tee "$OUT/gpt1.txt"

echo "== GPT-2: zero-shot from the task stated in words (choices: the 5 tasks' answers, chance 0.2)"
{
  "$GPTX" eval --checkpoint "$OUT/pt" --test "$D/described.test.jsonl" --format plain \
    --answer-context "=>" --limit "$ZS_LIMIT" $T
  echo "-- open-ended, greedy, exact match: with the description vs without it"
  desc_reverse="Task: write each word backwards."
  desc_upper="Task: write each word in capital letters."
  desc_first="Task: give the first letter of each word."
  desc_last="Task: give the last letter of each word."
  desc_twice="Task: write each word two times."
  for t in reverse upper first last twice; do
    var=desc_$t
    echo "-- $t, described: $("$GPTX" eval --checkpoint "$OUT/pt" --test "$D/$t.test.jsonl" \
      --description "${!var}" --limit "$FS_LIMIT" --max-tokens 12 $T | tail -1)"
    echo "-- $t, not described: $("$GPTX" eval --checkpoint "$OUT/pt" --test "$D/$t.test.jsonl" \
      --limit "$FS_LIMIT" --max-tokens 12 $T | tail -1)"
  done
} | tee "$OUT/gpt2.txt"

echo "== GPT-3: few-shot, no description, k demonstrations from the training split"
{
  echo "-- open-ended, greedy, exact match"
  for t in reverse upper first last twice; do
    echo "-- $t"
    "$GPTX" eval --checkpoint "$OUT/pt" --test "$D/$t.test.jsonl" --train "$D/$t.train.jsonl" \
      --k 0,1,4,8 --limit "$FS_LIMIT" --max-tokens 12 $T | tail -4
  done
  echo "-- multiple choice by likelihood (choices: the 5 tasks' answers, chance 0.2)"
  for t in reverse upper first last twice; do
    echo "-- $t"
    "$GPTX" eval --checkpoint "$OUT/pt" --test "$D/$t.choice.test.jsonl" \
      --train "$D/$t.choice.train.jsonl" --format plain --answer-context "=>" --k 0,1,4,8 \
      --limit "$FS_LIMIT" $T | tail -12
  done
} | tee "$OUT/gpt3.txt"
# All five tasks pooled, per k and rule: right answers summed over the tasks, 95% Wilson interval.
echo "-- all five tasks pooled, per rule and k"
awk '/^ +[0-9]+ +(exact-match|total|per-token|unconditional) / { r = $2 " " $1; right[r] += $3 * $6; n[r] += $6 }
     END { for (r in n) { p = right[r] / n[r]; z = 1.959964; d = 1 + z*z/n[r]; c = (p + z*z/(2*n[r])) / d
                          h = z * sqrt(p*(1-p)/n[r] + z*z/(4*n[r]*n[r])) / d
                          split(r, f, " "); printf "%-14s k %-2s %.3f  [%.3f, %.3f]  n %d\n", f[1], f[2], p, c - h, c + h, n[r] } }' \
  "$OUT/gpt3.txt" | sort -k1,1 -k3,3n | tee -a "$OUT/gpt3.txt"
echo "== done in $(( $(date +%s) - start )) s"
