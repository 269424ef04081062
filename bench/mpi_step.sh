#!/usr/bin/env bash
# Step time of `gptx train` (baby, global batch 12) on 1 process against 2 MPI ranks, interleaved
# in rounds; prints the median step of each configuration. See bench/README.md.
# Usage: bench/mpi_step.sh [build/release/gptx] [rounds]
set -euo pipefail
G="${1:-build/release/gptx}"
rounds="${2:-3}"
T="$(dirname "$0")/../../shared/data/tinyshakespeare.txt"
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
common=(train --text "$T" --preset baby --context 64 --iters 40 --warmup 5 --eval-every 1000
        --eval-iters 1 --log-every 1000)
uptime
for r in $(seq "$rounds"); do
  "$G" "${common[@]}" --batch 12 --threads 2 --out "$out/one2_$r" > /dev/null
  mpirun -np 2 "$G" "${common[@]}" --batch 6 --threads 1 --out "$out/two_$r" > /dev/null
  mpirun -np 2 "$G" "${common[@]}" --batch 6 --threads 1 --zero 1 --out "$out/twoz_$r" > /dev/null
  "$G" "${common[@]}" --batch 12 --threads 1 --out "$out/one1_$r" > /dev/null
done
python3 - "$out" <<'PY'
import glob, json, statistics, sys
names = {"one2": "1 process x 2 threads", "one1": "1 process x 1 thread",
         "two": "2 ranks x 1 thread", "twoz": "2 ranks x 1 thread, --zero 1"}
for key, name in names.items():
    rounds = []
    for f in sorted(glob.glob(f"{sys.argv[1]}/{key}_*/metrics.jsonl")):
        rounds.append([x["ms"] for x in map(json.loads, open(f)) if "ms" in x and x["step"] > 5])
    every = [m for r in rounds for m in r]
    print(f"{name}: median {statistics.median(every):.1f} ms/step "
          f"(rounds: {' / '.join(f'{statistics.median(r):.0f}' for r in rounds)})")
PY
