#!/usr/bin/env bash
# Train on a lent GPU machine (one NVIDIA H200) in ONE device-tool call, and bring the run back.
#
# The device tool copies the working tree to the machine (64 MiB at most: tracked and
# untracked-not-ignored files, shared/, and the ignored paths named in `carry`), runs one shell
# command (10 minutes at most) and brings back what it wrote under $OUT: at most 8 files,
# 16 MiB each, 64 MiB together. The machine is wiped when it goes back. It has python3 3.12
# with torch, torchvision, timm, onnx, onnxruntime, numpy, matplotlib, tqdm, pillow,
# safetensors and huggingface_hub, but no segmentation-models-pytorch, platformdirs or
# defusedxml, and no internet. So:
#
#   1. here:   scripts/gpu_train.sh prepare
#        downloads the missing packages as Python 3.12 wheels into .whl/ (ignored), copies the
#        real-data file into the repo's ignored shared/data/ (shared/ always travels), and
#        checks that what would travel fits the tool's 64 MiB. The shipped model alone is 62 MiB
#        and the tracked tree 66.5 MiB, so prepare also xz-compresses the model into .devcarry/
#        (54 MiB) and UNTRACKS the original for the call (git rm --cached + .git/info/exclude):
#        run `scripts/gpu_train.sh restore` (fetch runs it too) before committing anything.
#   2. device: run with carry [".whl", ".devcarry"], command `scripts/gpu_train.sh run`, timeout_s 600
#        unpacks the model from .devcarry, installs the wheels into /tmp/site, trains for MINUTES (default 6.5) into RUN_DIR
#        (default runs/gpu), logs to $OUT/train.log, then packs RUN_DIR/best.pt as float16
#        parts of < 16 MiB + run-meta.tar.gz + manifest.json into $OUT
#        (python -m waferdesk.ml.transfer pack; ~62.5 MiB for the ResNet-50 in 4 parts).
#        Environment overrides: RUN_DIR INIT_FROM (none: from scratch) DEVICE MINUTES STEPS
#        BATCH LR EVAL_EVERY CKPT_EVERY DATA_WORKERS VAL_COUNT SEED REAL REAL_PER_LABEL
#        EMA (0.999; 0: off) FREEZE_BN (1: on for a fine-tune; 0: off) TRAIN_TIMEOUT_S EXTRA_ARGS
#        PY (python3), e.g. `MINUTES=5 LR=3e-4 scripts/gpu_train.sh run`.
#   3. here:   scripts/gpu_train.sh fetch FILES_DIR RUN_DIR
#        FILES_DIR is the tool's files_at; checks every part's sha256, rebuilds RUN_DIR/best.pt
#        (float32 again) and the run's small files, and prints the commands that export,
#        evaluate and ship it.
#
# Status: steps 2 and 3 have been run end to end on CPU only (DEVICE=cpu, a tiny resnet18 run
# and one ResNet-50 step; tests/ml/test_transfer.py runs `fetch`); `run` has never yet run on
# the GPU machine.
set -euo pipefail

MODEL=resources/models/waferdesk-unet-r50.onnx
CARRY=.devcarry

usage() {
	echo "usage: scripts/gpu_train.sh prepare | run | fetch FILES_DIR RUN_DIR | restore" >&2
	exit 2
}

travel_mib() { # what the device tool sends: tracked + untracked-not-ignored files, shared/, .whl/
	{
		git ls-files -z --cached --others --exclude-standard
		[ -d shared ] && find shared -type f -print0
		[ -d .whl ] && find .whl -type f -print0
		[ -d "$CARRY" ] && find "$CARRY" -type f -print0
	} | sort -zu | { xargs -0 stat -c %s 2>/dev/null || true; } | awk '{s += $1} END {printf "%.1f", s / 1048576}'
}

detach_model() { # the shipped model travels xz-compressed in .devcarry/, not as a tracked file
	local exclude card=${MODEL%.onnx}.card.json
	exclude=$(git rev-parse --git-path info/exclude)
	mkdir -p "$CARRY" "$(dirname "$exclude")"
	if [ ! -f "$CARRY/init.onnx.xz" ] || [ "$MODEL" -nt "$CARRY/init.onnx.xz" ]; then
		echo "compressing $MODEL into $CARRY/init.onnx.xz (about a minute)"
		xz -T0 -6 -c "$MODEL" >"$CARRY/init.onnx.xz.part" && mv "$CARRY/init.onnx.xz.part" "$CARRY/init.onnx.xz"
	fi
	cp "$card" "$CARRY/init.card.json"
	if git ls-files --error-unmatch "$MODEL" >/dev/null 2>&1; then
		git rm --cached -q "$MODEL"
	fi
	grep -qxF "/$MODEL" "$exclude" 2>/dev/null || echo "/$MODEL" >>"$exclude"
	echo "NOTE: $MODEL is UNTRACKED for the device call; run 'scripts/gpu_train.sh restore' before any commit" >&2
}

restore() { # undo detach_model: the model tracked again (the file itself never moved)
	local exclude
	exclude=$(git rev-parse --git-path info/exclude)
	if [ -f "$exclude" ]; then
		grep -vxF "/$MODEL" "$exclude" >"$exclude.part" || true
		mv "$exclude.part" "$exclude"
	fi
	if ! git ls-files --error-unmatch "$MODEL" >/dev/null 2>&1; then
		git reset -q -- "$MODEL" 2>/dev/null || git add "$MODEL"
	fi
	git ls-files --error-unmatch "$MODEL" >/dev/null && echo "$MODEL is tracked again"
}

prepare() {
	local py=${PYTHON:-.venv/bin/python} pip_py=${PIP_PYTHON:-python3} exclude pkgs=() name ver f
	exclude=$(git rev-parse --git-path info/exclude)
	mkdir -p "$(dirname "$exclude")"
	grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"
	detach_model
	[ -z "${SKIP_WHEELS:-}" ] || return 0 # tests: no PyPI
	for name in segmentation-models-pytorch platformdirs defusedxml; do
		ver=$("$py" -c "import importlib.metadata as m; print(m.version('$name'))")
		pkgs+=("$name==$ver")
		for f in .whl/"$(echo "$name" | tr - _)"-*.whl; do # one version of each: two stop the install
			if [ -e "$f" ] && [[ $f != *-"$ver"-* ]]; then rm -v "$f"; fi
		done
	done
	"$pip_py" -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		-d .whl "${pkgs[@]}"
	ls -l .whl
	local real=${REAL:-shared/data/wm811k-val.npz} real_src=${REAL_SRC:-../shared/data/wm811k-val.npz}
	if [ ! -f "$real" ] && [ -f "$real_src" ]; then
		mkdir -p "$(dirname "$real")" && cp -v "$real_src" "$real"
	fi
	git check-ignore -q .whl/x && git check-ignore -q shared/x || echo "WARNING: .whl/ or shared/ is not ignored by git" >&2
	local mib
	mib=$(travel_mib)
	echo "the device tool would send ${mib} MiB (limit 64 MiB)"
	if awk -v m="$mib" 'BEGIN {exit !(m > 64)}'; then
		echo "ERROR: over the device tool's 64 MiB: the call would be refused. The biggest tracked files:" >&2
		{ git ls-files -z | xargs -0 stat -c '%s %n' 2>/dev/null | sort -rn | head -3 >&2; } || true
		return 1
	fi
}

run_on_device() {
	: "${OUT:?run this on the device machine, where the tool sets OUT}"
	local py=${PY:-python3} run_dir=${RUN_DIR:-runs/gpu} init=${INIT_FROM:-}
	local real=${REAL:-shared/data/wm811k-val.npz} status=0 pack_status=0 freeze_bn=${FREEZE_BN:-1}
	if [ "$freeze_bn" != 0 ] && [ "$freeze_bn" != 1 ]; then # before any work on the device's clock
		echo "ERROR: FREEZE_BN must be 1 (frozen BatchNorm for a fine-tune) or 0 (off); got '$freeze_bn'" >&2
		return 2
	fi
	if [ -z "$init" ]; then # the shipped model, from .devcarry when prepare left it there
		init=$MODEL
		if [ ! -f "$init" ] && [ -f "$CARRY/init.onnx.xz" ]; then
			init=runs/init/waferdesk-unet-r50.onnx
			mkdir -p runs/init
			"$py" -c "import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], 'wb'))" \
				"$CARRY/init.onnx.xz" "$init"
			cp "$CARRY/init.card.json" runs/init/waferdesk-unet-r50.card.json
		fi
	fi
	if compgen -G ".whl/*.whl" >/dev/null; then
		"$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
	fi
	export PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
	export TQDM_MININTERVAL=${TQDM_MININTERVAL:-15} # the progress bar every 15 s: a short log
	nvidia-smi -L || true
	"$py" -c "import torch; ok = torch.cuda.is_available(); \
print('torch', torch.__version__, 'cuda', ok, torch.cuda.get_device_name(0) if ok else '')"
	local args=(train --run-dir "$run_dir" --device "${DEVICE:-cuda}" --minutes "${MINUTES:-6.5}"
		--steps "${STEPS:-200000}" --batch-size "${BATCH:-32}" --lr "${LR:-5e-4}" --eval-every "${EVAL_EVERY:-1000}"
		--ckpt-every "${CKPT_EVERY:-1000}" --data-workers "${DATA_WORKERS:-12}" --val-count "${VAL_COUNT:-300}"
		--patience 100 --seed "${SEED:-909}" --ema "${EMA:-0.999}")
	[ "$init" = none ] || args+=(--init-from "$init")
	# Frozen BatchNorm suits a fine-tune (the CPU fine-tune of docs/ml.md's day 8 had no dip with
	# it and the weight average); a network trained from scratch must learn its statistics.
	if [ "$init" != none ] && [ "$freeze_bn" = 1 ]; then args+=(--freeze-bn); fi
	if [ -f "$real" ]; then
		args+=(--real "$real" --real-per-label "${REAL_PER_LABEL:-40}")
	else
		echo "no real-data file $real here: training without the real-map watch"
	fi
	# shellcheck disable=SC2206 # EXTRA_ARGS is split into words on purpose
	args+=(${EXTRA_ARGS:-})
	echo "+ $py -m waferdesk ${args[*]}"
	# A backstop before the tool's 10 minutes (--minutes should end training well before), so that
	# packing still happens: SIGINT, then SIGKILL 30 s later (where SIGINT is ignored, as in a
	# background job). best.pt is replaced atomically at each evaluation, so it is whole either way.
	timeout -s INT -k 30 "${TRAIN_TIMEOUT_S:-510}" "$py" -m waferdesk "${args[@]}" 2>&1 |
		tee "$OUT/train.log" || status=$?
	echo "training exited with status $status"
	if [ -f "$run_dir/best.pt" ]; then
		cp "$OUT/train.log" "$run_dir/train.log"
		"$py" -m waferdesk.ml.transfer pack "$run_dir" "$OUT" || pack_status=$?
		if [ "$pack_status" -ne 0 ]; then # over the limits with the log beside it? it is in run-meta.tar.gz too
			rm -f "$OUT/train.log"
			pack_status=0
			"$py" -m waferdesk.ml.transfer pack "$run_dir" "$OUT" || pack_status=$?
		fi
	else
		echo "no $run_dir/best.pt: nothing to pack"
	fi
	ls -l "$OUT"
	if [ "$status" -ne 0 ]; then return "$status"; fi
	return "$pack_status"
}

fetch() {
	[ $# -eq 2 ] || usage
	local files=$1 run=$2
	local bin=${WAFERDESK_BIN:-.venv/bin/waferdesk}
	restore
	"${PYTHON:-.venv/bin/python}" -m waferdesk.ml.transfer unpack "$files" "$run"
	cat <<EOF

next: export, evaluate on the first 300 test wafers, and ship if it is better
  $bin export $run --fp16 --views 4 --out /tmp/candidate.onnx
  [ -f runs/test303.wdm ] || $bin synth --count 2000 --seed 303 --out runs/test303.wdm
  $bin evaluate --model /tmp/candidate.onnx --data runs/test303.wdm --real none --limit 300
  TEST_SET=runs/test303.wdm scripts/ship_model.sh $run
EOF
}

case ${1:-} in
prepare) prepare ;;
restore) restore ;;
run) run_on_device ;;
fetch)
	shift
	fetch "$@"
	;;
*) usage ;;
esac
