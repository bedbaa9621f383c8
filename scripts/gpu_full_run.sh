#!/usr/bin/env bash
# The full-profile writeup and the benchmark on one GPU, then one tarball of docs/results to commit.
# Usage (on the GPU machine, from the repo root): scripts/gpu_full_run.sh OUT_TARBALL
set -uo pipefail
out=${1:-results.tar.gz}
export PYTHONUNBUFFERED=1 FUNDIFF_NO_PROGRESS=${FUNDIFF_NO_PROGRESS:-1}
python3 -m experiments writeup --profile full --device cuda --keep-going --out docs/results --work-dir .work
python3 -m experiments.benchmark --device cuda --quality .work/full --out docs/results/benchmark.json \
  --data-root "${FUNDIFF_DATA_ROOT:-}"
python3 -c "from experiments.summary import write_summary; write_summary(__import__('pathlib').Path('docs/results'))"
python3 -c "from experiments.writeup import pack; from pathlib import Path; print(pack(Path('docs/results'), Path('$out')))"
