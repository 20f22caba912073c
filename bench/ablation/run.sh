#!/usr/bin/env bash
# Ablation of issue 17: the registration pipeline of `diffreg register` (affine, ConvexAdam, refinement)
# on every harness case with each descriptor — fused (the MR default), fused without the diffusion
# features ('classical': MIND-SSC + patches), diffusion features alone, MIND-SSC alone (the CT default)
# and intensity patches alone. The output folder starts as a copy of bench/harness/<dataset>, so the
# default descriptor's rows (and identity's, elastix's) are the harness's own; the other descriptors are
# added to it (resumable: rerun to continue). Appends each dataset's summary and the paired table
# (paired.ts: each descriptor against 'classical') to bench/ablation/RESULTS.md.
# Usage: bash bench/ablation/run.sh [OUT_DIR]   (CASES=SPEC limits the cases, e.g. CASES=3; THREADS=N)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-/tmp/diffreg-ablation}
results=bench/ablation/RESULTS.md
started=$(date +%s)
run() {
  local dataset=$1 methods=$2
  [ -d "$out/$dataset" ] || { mkdir -p "$out" && cp -r "bench/harness/$dataset" "$out/$dataset"; }
  node bin/diffreg.js bench --dataset "$dataset" --methods "$methods" ${CASES:+--cases "$CASES"} \
    ${THREADS:+--threads "$THREADS"} --out "$out/$dataset" --resume >&2
}
mr=identity,elastix-native-bspline,default-register,classical-register,meddift-register,mind-register,patches-register
run lpba40 "$mr"
run acdc "$mr"
run lung-synthetic identity,elastix-native-bspline,default-register,fused-register,classical-register,meddift-register,patches-register
{
  echo "## $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; $(( ($(date +%s) - started) / 60 )) min; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "command: CASES=${CASES:-} THREADS=${THREADS:-} bash bench/ablation/run.sh $out"
  for dataset in lpba40 acdc lung-synthetic; do
    echo
    echo "### $dataset"
    echo
    # The summary table of the harness's summary.md, then the paired comparison.
    awk '/^## Summary/{on=1; next} /^## /{on=0} on' "$out/$dataset/summary.md"
    echo
    node --import tsx bench/ablation/paired.ts "$out" "$dataset"
  done
  echo
} >> "$results"
echo "appended to $results" >&2
