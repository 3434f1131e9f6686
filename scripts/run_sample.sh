#!/usr/bin/env bash
# The main job on the bundled sample, from a fresh machine: set up, then slice -> 3D digital core ->
# evaluation report (with diffusivity and stiffness beside the truth's) -> FLAC3D grid.
# Everything lands in runs/sample/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
out=runs/sample
dmcr=.venv/bin/dmcr
$dmcr sample --out "$out"
# The sample's clasts touch: a packed start (docs/reconstruction.md; the default, auto, also works).
$dmcr reconstruct "$out/slice.npy" --shape 64 64 64 --start packed --out "$out/core.npy" --overwrite
$dmcr evaluate --original "$out/slice.npy" --recon "$out/core.npy" --truth "$out/truth.npy" \
  --periodic --properties --out "$out/evaluation.json" --overwrite
$dmcr export "$out/core.npy" --format f3grid --voxel-size 0.001 --out "$out/core.f3grid" --overwrite
echo "done: $out (core.npy + .json, evaluation*.png/json, core.f3grid + .json, core.f3dat)"
