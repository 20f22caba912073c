#!/usr/bin/env bash
# Ablation of issue 6: the same matching and ConvexAdam code on three descriptors — diffusion features
# of the default model (MedDIFT), raw intensity patches, and MIND-SSC — on LPBA40 atlas→subject pairs,
# ACDC ES→ED pairs and synthetic breathing deformations of the thoracic CT. Appends the summary
# tables to bench/ablation/RESULTS.md.
# Usage: bash bench/ablation/run.sh [OUT_DIR]   (CASES=N sets the number of cases per dataset, default 3)
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-/tmp/diffreg-ablation}
n=${CASES:-3}
results=bench/ablation/RESULTS.md
run() {
  local dataset=$1 methods=$2
  node bin/diffreg.js bench --dataset "$dataset" --methods "$methods" --cases "$n" --out "$out/$dataset" >&2
}
run lpba40 identity,meddift-register,patches-register,mind-register
run acdc identity,meddift-register,patches-register,mind-register
run lung-synthetic identity,meddift-match,patches-match,mind-match,meddift-register,patches-register,mind-register
{
  echo "## $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo
  echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "command: CASES=$n bash bench/ablation/run.sh $out"
  for dataset in lpba40 acdc lung-synthetic; do
    echo
    echo "### $dataset"
    echo
    # The summary table of the harness's summary.md.
    awk '/^## Summary/{on=1; next} /^## /{on=0} on' "$out/$dataset/summary.md"
  done
  echo
} >> "$results"
echo "appended to $results" >&2
