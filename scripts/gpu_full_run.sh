#!/usr/bin/env bash
# The full-profile writeup and the benchmark on one GPU, then the results packed to commit.
# Usage (on the GPU machine, from the repo root):
#   FUNDIFF_GIT_COMMIT=<commit> [SKIP="sections"] [KEEP_WEIGHTS="sections"] [BENCHMARK=0] \
#     scripts/gpu_full_run.sh OUT_TARBALL [JOBS]
# A copy of the tree has no .git: FUNDIFF_GIT_COMMIT names the commit that runs (provenance).
# A full writeup outlasts one GPU job limited to 30 minutes, so it can be split: SKIP leaves sections (and their
# dependants) to a second job, and KEEP_WEIGHTS packs the final weights of the sections that the
# second job loads (e.g. classifier, about 2 MB) into OUT_TARBALL's folder as weights.tar.gz.
# Unpack that under .work/full/ here and carry it to the second job (scripts/gpu_rerun.sh "" "SKIPPED"):
# the same weight files, so the results stay consistent with the first job's.
# JOBS sections run side by side on the one GPU (default 4); the benchmark runs alone afterwards,
# so its timings are not shared with anything else.
# Results go to .work/results (git-ignored), never to docs/results: the device tool copies the
# tracked files of the working tree again at every call, so a run that outlasts one call and
# writes into docs/results has its new manifests overwritten by the committed ones. Unpack the
# tarball over docs/ here to commit.
set -uo pipefail
out=${1:-results.tar.gz}
jobs=${2:-4}
results=.work/results
export PYTHONUNBUFFERED=1 FUNDIFF_NO_PROGRESS=${FUNDIFF_NO_PROGRESS:-1}
mkdir -p "$results"
skip_args=(); for name in ${SKIP:-}; do skip_args+=(--skip "$name"); done
# GPU utilisation every 15 s (snapshot.sh brings it back): whether a stretch of the run was bound by the
# GPU or by something else, e.g. a section running alone at the end
if command -v nvidia-smi > /dev/null; then
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -l 15 > .work/gpu-usage.csv &
  usage_pid=$!
  trap 'kill $usage_pid 2> /dev/null' EXIT
fi
python3 -m experiments writeup --profile full --device cuda --keep-going --jobs "$jobs" --out "$results" \
  --work-dir .work --estimates docs/results "${skip_args[@]}"   # a fresh machine has no run.json to order by
# KEEP_WEIGHTS: each section's model.json and final weights (and the packed results so far) in OUT's folder
[ -n "${KEEP_WEIGHTS:-}" ] && scripts/snapshot.sh "$(dirname "$out")"
if [ "${BENCHMARK:-1}" != 0 ]; then   # BENCHMARK=0: leave it to the second job (it needs the classifier)
  python3 -m experiments.benchmark --device cuda --quality .work/full --out "$results/benchmark.json" \
    --data-root "${FUNDIFF_DATA_ROOT:-}"
fi
python3 -c "from experiments.pipeline.summary import write_summary; write_summary(__import__('pathlib').Path('$results'))"
python3 -c "from experiments.pipeline.writeup import pack; from pathlib import Path; print(pack(Path('$results'), Path('$out')))"
