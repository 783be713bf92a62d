"""Packing a run into parts that fit the device tool's return limits, and back: a tiny run, CPU."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from waferdesk.core.errors import WaferDeskError
from waferdesk.ml import transfer
from waferdesk.ml.export import export_checkpoint
from waferdesk.ml.transfer import MANIFEST, META, pack_run, unpack_run

REPO = Path(__file__).resolve().parents[2]
CHUNK = 8 * 2**20


@pytest.fixture(scope="module")
def run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny run (never change the session's), with the log the device script adds."""
    run = tmp_path_factory.mktemp("run") / "tiny"
    shutil.copytree(tiny_run, run)
    (run / "train.log").write_text("step 2: val loss 1.0\nstep 4: val loss 0.9\n")
    return run


@pytest.fixture(scope="module")
def packed(run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run packed in parts of 8 MiB (the tiny blob is ~27 MiB: 4 parts; 2 at the default size)."""
    out = tmp_path_factory.mktemp("packed")
    pack_run(run, out, chunk_bytes=CHUNK)
    return out


def _manifest(d: Path) -> dict:
    return json.loads((d / MANIFEST).read_text())


def test_parts_fit_the_chunk_size_and_join_back_exactly(packed: Path) -> None:
    m = _manifest(packed)
    parts = [packed / p["file"] for p in m["parts"]]
    assert [p.name for p in parts] == [f"best-fp16.pt.part{i:02d}" for i in range(4)]
    assert all(p.stat().st_size <= CHUNK for p in parts) and parts[0].stat().st_size == CHUNK
    blob = b"".join(p.read_bytes() for p in parts)
    assert len(blob) == m["blob"]["size"] and hashlib.sha256(blob).hexdigest() == m["blob"]["sha256"]
    for p, info in zip(parts, m["parts"], strict=True):
        assert hashlib.sha256(p.read_bytes()).hexdigest() == info["sha256"]
    assert m["run"] == "tiny" and m["meta"]["members"] == [
        "config.json", "metrics.json", "train_log.json", "summary.json", "curves.png", "train.log",
    ]  # fmt: skip
    assert sorted(f.name for f in packed.iterdir()) == sorted([*(p.name for p in parts), META, MANIFEST])
    ck = torch.load(io.BytesIO(blob), weights_only=False)
    assert ck["model"]["unet.encoder.conv1.weight"].dtype == torch.float16
    assert ck["model"]["unet.encoder.bn1.running_var"].dtype == torch.float32


def test_round_trip_gives_the_run_back_in_float32(run: Path, packed: Path, tmp_path: Path) -> None:
    out = unpack_run(packed, tmp_path / "back")
    before = torch.load(run / "best.pt", weights_only=False)
    after = torch.load(out / "best.pt", weights_only=False)
    assert set(after) == {"model", "step", "metrics", "config", "architecture", "packed"}
    for k in ("step", "metrics", "config", "architecture"):
        assert after[k] == before[k], k
    a, b = after["model"], before["model"]
    assert list(a) == list(b)
    fp16 = set(after["packed"]["fp16"])
    assert "unet.encoder.conv1.weight" in fp16 and not any("running_" in n or "bias" in n for n in fp16)
    for name, t in b.items():
        assert a[name].shape == t.shape and a[name].dtype == t.dtype, name
        if name in fp16:
            assert torch.equal(a[name], t.half().float()), name  # exactly fp16 rounding, nothing more
            assert torch.allclose(a[name], t, rtol=2**-10, atol=1e-7), name
        else:
            assert torch.equal(a[name], t), name  # BatchNorm statistics, biases, counters: untouched
    for name in ("config.json", "metrics.json", "train_log.json", "summary.json", "curves.png", "train.log"):
        assert (out / name).read_bytes() == (run / name).read_bytes(), name
    assert not (out / "last.pt").exists()


def test_the_unpacked_run_exports_with_its_fp16_lineage(packed: Path, tmp_path: Path) -> None:
    back = unpack_run(packed, tmp_path / "back")
    onnx_path, card = export_checkpoint(back, tmp_path / "m.onnx", fp16=True, check_wafers=2)
    assert onnx_path.is_file() and card.onnx["precision"] == "fp16-weights"
    assert card.onnx["check"]["argmax_agreement"] > 0.99
    assert card.training["run"] == "back" and card.training["packed"]["fp16_tensors"] == 31  # every convolution
    assert card.training["packed"]["from"] == "tiny/best.pt"


def test_a_corrupt_or_missing_part_is_refused_by_name(packed: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(packed, bad)
    data = bytearray((bad / "best-fp16.pt.part02").read_bytes())
    data[1000] ^= 0xFF
    (bad / "best-fp16.pt.part02").write_bytes(bytes(data))
    with pytest.raises(WaferDeskError, match=r"best-fp16\.pt\.part02: corrupt"):
        unpack_run(bad, tmp_path / "r1")
    (bad / "best-fp16.pt.part01").unlink()
    with pytest.raises(WaferDeskError, match=r"best-fp16\.pt\.part01: missing"):
        unpack_run(bad, tmp_path / "r2")
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()


def test_unpack_overwrites_nothing_and_extracts_plain_names_only(packed: Path, tmp_path: Path) -> None:
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "best.pt").write_bytes(b"keep")
    with pytest.raises(WaferDeskError, match="not empty"):
        unpack_run(packed, tmp_path / "used")
    assert (tmp_path / "used" / "best.pt").read_bytes() == b"keep"

    evil = tmp_path / "evil"
    shutil.copytree(packed, evil)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    (evil / META).write_bytes(buf.getvalue())
    m = _manifest(evil)
    m["meta"].update(size=len(buf.getvalue()), sha256=hashlib.sha256(buf.getvalue()).hexdigest())
    (evil / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(WaferDeskError, match=r"refusing archive member '\.\./outside\.txt'"):
        unpack_run(evil, tmp_path / "r" / "run")
    assert not (tmp_path / "r" / "outside.txt").exists()


def test_pack_refuses_a_run_without_best_pt(run: Path, tmp_path: Path) -> None:
    empty = tmp_path / "norun"
    shutil.copytree(run, empty, ignore=shutil.ignore_patterns("*.pt"))
    with pytest.raises(WaferDeskError, match=r"norun/best\.pt: no such file"):
        pack_run(empty, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_pack_refuses_what_the_tool_could_not_bring_back(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(WaferDeskError, match=r"best\.pt: packed it needs \d{3} files.*at most 8 files"):
        pack_run(run, tmp_path / "out", chunk_bytes=200_000)  # ~140 parts of 200 KB
    assert not (tmp_path / "out").exists()
    # files already in OUT (the script's train.log) come back too, so they count
    monkeypatch.setattr(transfer, "MAX_TOTAL_BYTES", 40 * 2**20)
    out = tmp_path / "out2"
    out.mkdir()
    with open(out / "train.log", "wb") as f:
        f.truncate(20 * 2**20)
    with pytest.raises(WaferDeskError, match=r"with train\.log already there"):
        pack_run(run, out)
    assert [p.name for p in out.iterdir()] == ["train.log"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "waferdesk.ml.transfer", *args], capture_output=True, text=True)


def test_cli_gives_a_one_line_error(tmp_path: Path) -> None:
    res = _cli("pack", str(tmp_path / "nothing"), str(tmp_path / "out"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [
        f"waferdesk.ml.transfer pack: error: {tmp_path / 'nothing' / 'best.pt'}: no such file "
        "(nothing to pack: the run never saved a best checkpoint)"
    ]


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def mini_repo(tmp_path: Path) -> Path:
    """A throw-away git repository holding the script and a stand-in shipped model: the script's
    git surgery (untrack the model for a device call, track it again) never touches this one."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(REPO / "scripts" / "gpu_train.sh", repo / "scripts")
    models = repo / "resources" / "models"
    models.mkdir(parents=True)
    (models / "waferdesk-unet-r50.onnx").write_bytes(os.urandom(200_000) + bytes(300_000))
    (models / "waferdesk-unet-r50.card.json").write_text('{"name": "stand-in"}')
    (repo / ".gitignore").write_text((REPO / ".gitignore").read_text())
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    return repo


def _script(repo: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    cmd = ["bash", "scripts/gpu_train.sh", *args]
    full_env = {**os.environ, "PYTHON": sys.executable, **env}
    return subprocess.run(cmd, cwd=repo, env=full_env, capture_output=True, text=True)


def _fetch(packed: Path, run: Path, repo: Path) -> subprocess.CompletedProcess[str]:
    return _script(repo, "fetch", str(packed), str(run))


def test_prepare_sends_the_model_compressed_and_restore_tracks_it_again(mini_repo: Path) -> None:
    """The tracked tree is over the device tool's 64 MiB with the shipped model in it, so
    prepare carries it xz-compressed and untracks the original; restore undoes that."""
    import lzma

    model = "resources/models/waferdesk-unet-r50.onnx"
    res = _script(mini_repo, "prepare", SKIP_WHEELS="1")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "UNTRACKED" in res.stderr and "restore" in res.stderr
    assert model not in _git(mini_repo, "ls-files")
    assert f"!! {model}" in _git(mini_repo, "status", "--porcelain", "--ignored", model)  # ignored: stays here
    carried = mini_repo / ".devcarry"
    assert lzma.decompress((carried / "init.onnx.xz").read_bytes()) == (mini_repo / model).read_bytes()
    assert json.loads((carried / "init.card.json").read_text()) == {"name": "stand-in"}
    res = _script(mini_repo, "restore")
    assert res.returncode == 0 and "tracked again" in res.stdout, res.stderr
    assert model in _git(mini_repo, "ls-files") and _git(mini_repo, "status", "--porcelain") == ""


def test_gpu_train_fetch_unpacks_and_says_what_comes_next(packed: Path, tmp_path: Path, mini_repo: Path) -> None:
    run = tmp_path / "fetched"
    _script(mini_repo, "prepare", SKIP_WHEELS="1")
    res = _fetch(packed, run, mini_repo)
    assert res.returncode == 0, res.stdout + res.stderr
    assert (run / "best.pt").is_file() and (run / "config.json").is_file()
    assert f"wrote {run / 'best.pt'}" in res.stdout
    assert f"export {run} --fp16 --views 4 --out /tmp/candidate.onnx" in res.stdout
    assert f"TEST_SET=runs/test303.wdm scripts/ship_model.sh {run}" in res.stdout
    assert "tracked again" in res.stdout and _git(mini_repo, "status", "--porcelain") == ""  # fetch restores
    again = _fetch(packed, run, mini_repo)
    assert again.returncode == 2 and "not empty" in again.stderr and "Traceback" not in again.stderr


def _device_train_args(repo: Path, tmp_path: Path, **env: str) -> list[str]:
    """Run the device step with a stand-in interpreter that records the training command line
    instead of training (no best.pt appears, so nothing is packed): what `run` asks of training."""
    log = tmp_path / "train-args.txt"
    fake = tmp_path / "fake-python"
    fake.write_text(f'#!/bin/sh\nif [ "$1" = -m ]; then shift 2; printf "%s\\n" "$@" > {log}; fi\nexit 0\n')
    fake.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    res = _script(repo, "run", OUT=str(out), PY=str(fake), REAL="absent.npz", **env)
    assert res.returncode == 0, res.stdout + res.stderr
    return log.read_text().split("\n")


def test_gpu_train_run_fine_tunes_with_a_weight_average_and_frozen_batchnorm(mini_repo: Path, tmp_path: Path) -> None:
    """The recipe measured on CPU (docs/ml.md, day 8) is the device run's default for a fine-tune;
    from scratch BatchNorm must learn its statistics, and both are environment switches."""
    args = _device_train_args(mini_repo, tmp_path, INIT_FROM="init.onnx")
    assert args[0] == "train" and args[args.index("--init-from") + 1] == "init.onnx"
    assert args[args.index("--ema") + 1] == "0.999" and "--freeze-bn" in args
    scratch = _device_train_args(mini_repo, tmp_path, INIT_FROM="none")
    assert "--init-from" not in scratch and "--freeze-bn" not in scratch and "--ema" in scratch
    off = _device_train_args(mini_repo, tmp_path, INIT_FROM="init.onnx", EMA="0", FREEZE_BN="0")
    assert off[off.index("--ema") + 1] == "0" and "--freeze-bn" not in off
    bad = _script(mini_repo, "run", OUT=str(tmp_path / "out"), PY="false", INIT_FROM="init.onnx", FREEZE_BN="yes")
    assert bad.returncode == 2 and "FREEZE_BN must be 1" in bad.stderr and "'yes'" in bad.stderr
