#!/usr/bin/env bash
# bench/compare.sh: gptx bench and bench/pytorch_reference.py on the same workloads, in one run on
# one machine, interleaved workload by workload (so a noisy neighbour hits both alike); prints
# both JSON lines and a table of ratios.
#
#   bench/compare.sh [workload ...]          (default: all five)
#   env: GPTX=path/to/gptx (default build-bench/gptx, then build/gptx), THREADS=2,
#        PYTHON=/usr/bin/python3 (Debian's python3-torch), TORCH_MODE=best|omp2-blas1|omp1-blas2|omp2-blas2,
#        REPS= / WARMUP= (default: per workload), OUT=file for the JSON lines (default: stdout only),
#        PRECISION=fp32|bf16 (default fp32; bf16: `gptx --precision bf16` against PyTorch's
#        torch.autocast("cpu", dtype=torch.bfloat16))
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
gptx=${GPTX:-}
if [[ -z $gptx ]]; then
  for c in "$root/build-bench/gptx" "$root/build/gptx" "$root/build/release/gptx"; do
    [[ -x $c ]] && { gptx=$c; break; }
  done
fi
[[ -x ${gptx:-} ]] || { echo "compare.sh: no gptx binary; build it or set GPTX=" >&2; exit 1; }
python=${PYTHON:-/usr/bin/python3}
threads=${THREADS:-2}
workloads=("$@")
[[ ${#workloads[@]} -gt 0 ]] || workloads=(train-gpt2 train-baby generate-gpt2 generate-gpt2-batch8 train-gpt2-long)
extra=()
[[ -n ${REPS:-} ]] && extra+=(--reps "$REPS")
[[ -n ${WARMUP:-} ]] && extra+=(--warmup "$WARMUP")

precision=${PRECISION:-fp32}
mode=${TORCH_MODE:-best}
if [[ $mode == best ]]; then
  mode=$("$python" "$here/pytorch_reference.py" --threads "$threads" --precision "$precision" --only-probe)
fi
echo "# $(date -u +%FT%TZ) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cpus, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "# gptx: $gptx --precision $precision --threads $threads; pytorch: $python, thread mode $mode, precision $precision" >&2

lines=$(mktemp)
trap 'rm -f "$lines"' EXIT
for w in "${workloads[@]}"; do
  g=$("$gptx" --precision "$precision" bench --workload "$w" --threads "$threads" "${extra[@]}" | sed 's/}$/,"impl":"gptx"}/')
  echo "$g"
  echo "$g" >> "$lines"
  p=$("$python" "$here/pytorch_reference.py" --workload "$w" --threads "$threads" --threads-mode "$mode" --precision "$precision" "${extra[@]}")
  echo "$p"
  echo "$p" >> "$lines"
done
[[ -n ${OUT:-} ]] && cp "$lines" "$OUT"

"$python" - "$lines" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    j = json.loads(line)
    rows.setdefault(j["workload"], {})["gptx" if j["impl"] == "gptx" else "torch"] = j
print()
print(f"{'workload':22} {'gptx ms':>10} {'torch ms':>10} {'gptx/torch':>10} {'speedup':>8} "
      f"{'gptx tok/s':>10} {'torch tok/s':>11} {'gptx RSS':>9} {'torch RSS':>9}")
for w, r in rows.items():
    g, t = r.get("gptx"), r.get("torch")
    if not g or not t:
        continue
    print(f"{w:22} {g['median_ms']:10.1f} {t['median_ms']:10.1f} {g['median_ms'] / t['median_ms']:10.3f} "
          f"{t['median_ms'] / g['median_ms']:7.2f}x {g['tokens_per_s']:10.1f} {t['tokens_per_s']:11.1f} "
          f"{g['peak_rss_mb']:8.0f}M {t['peak_rss_mb']:8.0f}M")
PY
