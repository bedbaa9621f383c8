#!/usr/bin/env bash
# What a long GPU job has finished so far, packed into OUTDIR, so that a GPU job with a time limit
# that ends before the work does still brings back what it finished.
# Usage (repo root, at the end of every `scripts/bg.sh wait` call):
#   [KEEP_WEIGHTS="sections"] scripts/snapshot.sh OUTDIR
# OUTDIR/partial.tar.gz: the finished sections of .work/results, packed like the final tarball
# (`build-site unpack` takes it; unfinished sections are simply absent), and OUTDIR/gpu-usage.csv, the
# GPU utilisation trace, when gpu_full_run.sh is running. OUTDIR/weights.tar.gz: the
# final weights of the KEEP_WEIGHTS sections trained so far, as gpu_full_run.sh packs them, so the
# sections left over can run in a later GPU job on the same weights.
set -uo pipefail
outdir=${1:?usage: scripts/snapshot.sh OUTDIR}
mkdir -p "$outdir"
[ -d .work/results ] && python3 -c "
from pathlib import Path; from experiments.pipeline.writeup import pack
print('snapshot:', pack(Path('.work/results'), Path('$outdir/partial.tar.gz')))"
[ -f .work/gpu-usage.csv ] && cp .work/gpu-usage.csv "$outdir/"    # gpu_full_run.sh's utilisation trace
[ -n "${KEEP_WEIGHTS:-}" ] || exit 0
files=($(python3 -c "
import sys; from pathlib import Path
from experiments.core.checkpoints import SPEC, checkpoint_path, has_model, model_dir, read_spec
from experiments.pipeline.results import load_manifest
root = Path('.work/full')
for name in sys.argv[1:]:
    key = (load_manifest(Path('.work/results'), name) or {}).get('weights_key')   # the weights its results used
    if has_model(root, name, key):
        folder = model_dir(root, name, key)
        print(folder.relative_to(root) / SPEC, checkpoint_path(folder, read_spec(folder)['final_epoch']).relative_to(root))
" $KEEP_WEIGHTS))
[ ${#files[@]} -gt 0 ] && tar czf "$outdir/weights.tar.gz" -C .work/full "${files[@]}" && echo "weights: ${files[*]}"
exit 0
