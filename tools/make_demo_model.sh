#!/usr/bin/env bash
# The exact commands that produced posecli/models/demo.pt (CPU, 2 cores, about
# 60 minutes of training). Run from the repo root; data and runs go to ./data.
set -euo pipefail
mkdir -p data
posecli synth data/synth200 --images 200 --seed 0 --quiet                       # 368x368
posecli synth data/synth_train --images 2000 --width 256 --height 256 --seed 1 --quiet
posecli synth data/synth_val --images 200 --width 256 --height 256 --seed 2 --quiet \
    --videos 2 --video-frames 40
# Steps 0-1500 on the 200-image set (lr 5e-4) ...
posecli train --images data/synth200 --annotations data/synth200/annotations.json \
    --out data/demo_run --width-mult 0.25 --stages 3 --refine-kernel 3 --crop 184 \
    --batch-size 8 --lr 5e-4 --warmup-steps 50 --threads 1 --num-workers 1 \
    --checkpoint-every 200 --steps 1500 --quiet
# ... then on the 2000-image set at lr 1e-3 (STEPS: see the note in the model's metadata).
posecli train --resume data/demo_run/last.pt --out data/demo2 --images data/synth_train \
    --annotations data/synth_train/annotations.json --lr 1e-3 --threads 2 \
    --checkpoint-every 250 --steps "${STEPS:-6500}" --quiet
python tools/package_demo_model.py data/demo2/last.pt data/synth_val
