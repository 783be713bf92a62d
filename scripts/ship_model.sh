#!/usr/bin/env bash
# Turn a finished training run into the shipped default model, with the numbers the README
# quotes. Usage: [VIEWS=4] [TEST_SET=FILE.wdm] scripts/ship_model.sh RUN_DIR [REAL_NPZ]
#
#   1. export RUN_DIR/best.pt as fp16-weight ONNX + card to resources/models/, the card asking
#      for VIEWS (default 4) test-time augmentation views, so the numbers below are those of
#      what every consumer runs
#   2. make the held-out synthetic test set (seed 303, 2,000 wafers; never trained on)
#   3. evaluate through the ONNX model on it and on all real WM-811K maps, recorded in the
#      card as metrics.test, confusion matrices to docs/model/
#   4. evaluate the first 64 test wafers, recorded as metrics.check (tests/ml/test_default_model.py
#      re-runs exactly this in seconds)
#   5. copy the training curves to docs/model/
set -euo pipefail
run=${1:?usage: scripts/ship_model.sh RUN_DIR [REAL_NPZ]}
real=${2:-../shared/data/wm811k-val.npz}
bin=${WAFERDESK_BIN:-.venv/bin/waferdesk}
model=resources/models/waferdesk-unet-r50.onnx
test_set=${TEST_SET:-$run/test303.wdm}
views=${VIEWS:-4}

mkdir -p resources/models docs/model
"$bin" export "$run" --fp16 --views "$views" --out "$model"
[ -f "$test_set" ] || "$bin" synth --count 2000 --seed 303 --out "$test_set"
"$bin" evaluate --model "$model" --data "$test_set" --real "$real" --out docs/model --record test
"$bin" evaluate --model "$model" --data "$test_set" --real none --limit 64 --record check
cp "$run/curves.png" docs/model/curves.png
ls -la "$model" docs/model
