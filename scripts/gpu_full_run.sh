#!/usr/bin/env bash
# The full-profile writeup and the benchmark on one GPU, then the results packed to commit.
# Usage (on the GPU machine, from the repo root):
#   FUNDIFF_GIT_COMMIT=<commit> scripts/gpu_full_run.sh OUT_TARBALL [JOBS]
# A copy of the tree has no .git: FUNDIFF_GIT_COMMIT names the commit that runs (provenance).
# JOBS sections run side by side on the one GPU (default 4); the benchmark runs alone afterwards,
# so its timings are not shared with anything else.
set -uo pipefail
out=${1:-results.tar.gz}
jobs=${2:-4}
export PYTHONUNBUFFERED=1 FUNDIFF_NO_PROGRESS=${FUNDIFF_NO_PROGRESS:-1}
python3 -m experiments writeup --profile full --device cuda --keep-going --jobs "$jobs" --out docs/results \
  --work-dir .work
python3 -m experiments.benchmark --device cuda --quality .work/full --out docs/results/benchmark.json \
  --data-root "${FUNDIFF_DATA_ROOT:-}"
python3 -c "from experiments.summary import write_summary; write_summary(__import__('pathlib').Path('docs/results'))"
python3 -c "from experiments.writeup import pack; from pathlib import Path; print(pack(Path('docs/results'), Path('$out')))"
