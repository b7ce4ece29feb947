#!/usr/bin/env bash
# Regenerate the sample clips and their expected outputs (run from the repo root).
#
# The clips are drawn by posecli itself (posecli synth: procedurally drawn
# figures, no third-party footage); the expected outputs are what the built-in
# demo model gives on them today. tests/test_samples.py runs posecli on every
# clip and `posecli compare`s the result with these files, so a change that
# moves keypoints shows up in CI. Rerun this script only for an intended change
# of results, and say so in the commit.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
posecli synth "$tmp/walkers" --images 0 --videos 1 --video-frames 20 --fps 10 \
    --width 256 --height 256 --min-people 1 --max-people 3 --seed 7 --quiet
cp "$tmp/walkers/videos/clip_000.mp4" samples/walkers.mp4
cp "$tmp/walkers/videos/clip_000.json" samples/walkers.truth.json
posecli video samples/walkers.mp4 --weights demo --net-height 256 --precision fp32 --quiet \
    --out samples/walkers.expected.json
