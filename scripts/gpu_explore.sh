#!/usr/bin/env bash
# An exploratory better-recipe run on a GPU machine: other models than the committed config, judged on a
# small grid (gamma = 1 from N(0, I), and from the class-matched start with x0_hat clipped), then the usual
# headline draws. The results go to .work/explore (never docs/results) and its manifest is packed; back
# here, `build-site archive <unpacked>/better-recipe/manifest.json` puts it on the better-recipe page.
# Usage (repo root; FUNDIFF_DATA_ROOT and FUNDIFF_GIT_COMMIT set, .work/full/classifier carried in):
#   scripts/gpu_explore.sh "VARIANT[,VARIANT...]" OUT.tar.gz [--set KEY=VALUE ...]
#   e.g. scripts/gpu_explore.sh "unet.norm=group train.ema_decay=0.999 train.epochs=80 diffusion.predict=x0" $OUT/x.tar.gz
# The variants train in lockstep; budget about 4 minutes per 80-epoch D = 64 model plus 3 minutes of sampling.
# PROFILE, DEVICE, RESULTS and WORK (default full, cuda, docs/results, .work) exist for a smoke test on the CPU.
set -uo pipefail
variants=$1; pack=$2; shift 2
export PYTHONUNBUFFERED=1 FUNDIFF_NO_PROGRESS=1
out=.work/explore
rm -rf "$out" && mkdir -p .work && cp -r "${RESULTS:-docs/results}" "$out" || exit 1
python3 -m experiments run better-recipe --profile "${PROFILE:-full}" --device "${DEVICE:-cuda}" --work-dir "${WORK:-.work}" \
  --no-progress \
  --out "$out" --set "variants=$variants" --set guidance=1 --set samplers=matched+clip --set sampler_guidance=1 "$@"
rc=$?
[ $rc -eq 0 ] && tar czf "$pack" -C "$out" better-recipe/manifest.json
exit $rc
