#!/usr/bin/env bash
# Rerun some sections in the full profile on a GPU machine that has the committed docs/results/ but
# none of the checkpoints (they are never committed).
# Usage (from the repo root, FUNDIFF_GIT_COMMIT set as for gpu_full_run.sh):
#   scripts/gpu_rerun.sh "WEIGHTS..." "SECTIONS..."
# WEIGHTS: dependency sections whose weights the SECTIONS load, retrained with the same code,
#   config and seed into a scratch results folder ("" when the weights were carried in under
#   .work/full/ from gpu_full_run.sh's KEEP_WEIGHTS: then the results stay consistent), so the
#   committed results of the dependencies stay as they are; their retrained metrics are printed
#   beside the committed ones (same-seed GPU runs differ in the last digits: cuDNN picks its
#   algorithms by timing). The first WEIGHTS section runs
#   first, then the others side by side. A section's plan checks the weights of its dependencies'
#   dependencies too (e.g. better-recipe -> evaluation -> class-conditioned), so name those as well.
# SECTIONS: run one after the other into .work/results, a copy of docs/results made at the start
#   (each run also rewrites summary.json); `DONE <name>` is logged after each. Pack .work/results to
#   bring them back: the device tool copies tracked files again at every call, so docs/results
#   itself would be reset under a run that spans calls. The benchmark is its own command (see
#   gpu_full_run.sh).
set -uo pipefail
weights=($1); sections=($2)
export PYTHONUNBUFFERED=1 FUNDIFF_NO_PROGRESS=1
scratch=.work/scratch-results
results=.work/results
[ -d "$results" ] || { mkdir -p .work && cp -r docs/results "$results"; }
run() { python3 -m experiments run "$@" --profile full --device cuda --work-dir .work --no-progress; }
stamp() { echo "$(date -u +%H:%M:%S) $*"; }

stamp "START weights ${weights[*]}; sections ${sections[*]}"
if [ ${#weights[@]} -gt 0 ]; then   # none: the weights were carried in (see gpu_full_run.sh KEEP_WEIGHTS)
  run "${weights[0]}" --out "$scratch" || exit 1
  others=("${weights[@]:1}")
  for name in "${others[@]}"; do run "$name" --out "$scratch" > "weights-$name.log" 2>&1 & done
  wait   # the retrained weights are ready before any section that may need them
fi
for name in "${sections[@]}"; do
  run "$name" --out "$results" && stamp "DONE $name" || stamp "FAILED $name"
done
cat weights-*.log 2>/dev/null
python3 - "$scratch" "${weights[@]}" <<'EOF'
import json, sys
scratch, names = sys.argv[1], sys.argv[2:]
for name in names:
    new = json.load(open(f"{scratch}/{name}/manifest.json"))["metrics"]
    old = json.load(open(f"docs/results/{name}/manifest.json"))["metrics"]   # the committed ones
    for key in sorted(set(new) & set(old)):
        a, b = old[key].get("value"), new[key].get("value")
        if isinstance(a, (int, float)) and isinstance(b, (int, float)):
            print(f"retrained {name}.{key}: committed {a:.6g} retrained {b:.6g}")
EOF
stamp "ALL DONE"
