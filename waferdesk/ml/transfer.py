"""Pack a finished training run into pieces small enough to come back from a lent GPU machine.

Why: the device tool that runs training on a lent GPU (``scripts/gpu_train.sh``) brings back
only what the command wrote under ``$OUT``, and at most :data:`MAX_FILES` files of at most
:data:`MAX_FILE_BYTES` each, :data:`MAX_TOTAL_BYTES` together. A ResNet-50 U-Net's ``best.pt``
is ~125 MiB in float32 (~32.6M values), and the machine is wiped when it goes back, so the
weights must fit those limits or the run is lost.

:func:`pack_run` stores every floating tensor of two or more dimensions (convolution and
linear weights: almost all of the bytes) as float16, keeps the rest exactly (biases,
BatchNorm running statistics, ``num_batches_tracked``), serialises the checkpoint with
``torch.save`` and splits the bytes into ``best-fp16.pt.partNN`` files; the run's small files
travel in ``run-meta.tar.gz``, and ``manifest.json`` records every file's size and sha256. For
the ResNet-50 that is ~62.5 MiB in 4 parts + 2 small files. fp16 rounding changes each weight
by at most 2^-11 of its value; the exported model ships with fp16 weights anyway
(``waferdesk export --fp16``).

:func:`unpack_run` checks every part against the manifest, joins them, casts back to float32
and writes a run directory that ``waferdesk export`` and ``scripts/ship_model.sh`` accept: a
``best.pt`` of the same structure as :mod:`waferdesk.ml.train` writes, plus a ``packed`` entry
so the lineage says the weights went through fp16. There is no ``last.pt`` (it holds the
optimizer state: twice the weights again), so an unpacked run cannot be resumed; it can be
fine-tuned (``waferdesk train --init-from RUN/best.pt``).

Command line::

    python -m waferdesk.ml.transfer pack RUN_DIR OUT_DIR
    python -m waferdesk.ml.transfer unpack PACKED_DIR RUN_DIR
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import tarfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from waferdesk.core.atomic import atomic_open
from waferdesk.core.errors import WaferDeskError

if TYPE_CHECKING:
    import torch

# what the device tool brings back from $OUT (its README's limits)
MAX_FILES = 8
MAX_FILE_BYTES = 16 * 2**20
MAX_TOTAL_BYTES = 64 * 2**20
DEFAULT_CHUNK_BYTES = MAX_FILE_BYTES - 4096

CHECKPOINT = "best.pt"
BLOB = "best-fp16.pt"
META = "run-meta.tar.gz"
MANIFEST = "manifest.json"
FORMAT = "waferdesk-packed-run/1"
# the run directory's small files (those that exist are packed); last.pt is left behind
META_FILES = ("config.json", "metrics.json", "train_log.json", "summary.json", "curves.png", "train.log")
CHECKPOINT_KEYS = ("model", "step", "metrics", "config", "architecture")


def _part_name(i: int) -> str:
    return f"{BLOB}.part{i:02d}"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _mib(n: int) -> str:
    return f"{n / 2**20:.2f} MiB"


def _to_fp16(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """float16 copies of the floating tensors with ndim >= 2; the rest as is. Refuses a weight
    that float16 cannot hold (|x| > 65504 would become inf)."""
    import torch

    out, names = {}, []
    for name, t in state.items():
        if t.is_floating_point() and t.ndim >= 2:
            half = t.detach().to(torch.float16)
            if not bool(torch.isfinite(half).all()) and bool(torch.isfinite(t).all()):
                raise WaferDeskError(f"{name}: values beyond float16's range (max |x| {float(t.abs().max()):.4g})")
            out[name] = half
            names.append(name)
        else:
            out[name] = t
    return out, names


def _meta_archive(run: Path) -> tuple[bytes, list[str]]:
    """The run's small files as a flat .tar.gz (names only, no directories), in memory."""
    buf = io.BytesIO()
    members = []
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in META_FILES:
            if (run / name).is_file():
                tar.add(run / name, arcname=name, recursive=False)
                members.append(name)
    return buf.getvalue(), members


def pack_run(run_dir: str | Path, out_dir: str | Path, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> list[Path]:
    """Pack ``run_dir/best.pt`` (fp16 weights, split) and its small files into ``out_dir``.

    Writes ``best-fp16.pt.part00``, ``.part01``, ... (each <= ``chunk_bytes``),
    ``run-meta.tar.gz`` and ``manifest.json``; returns the files written, manifest last.
    Files already in ``out_dir`` (e.g. the training log the device script tees there) count
    towards the tool's limits, since they come back too; earlier parts are replaced. Nothing is
    written when the result would exceed the limits.
    """
    run, out = Path(run_dir), Path(out_dir)
    ckpt_path = run / CHECKPOINT
    if not ckpt_path.is_file():
        raise WaferDeskError(f"{ckpt_path}: no such file (nothing to pack: the run never saved a best checkpoint)")
    if not 0 < chunk_bytes <= MAX_FILE_BYTES:
        raise WaferDeskError(f"chunk size must be 1..{MAX_FILE_BYTES} bytes (the tool's file limit), got {chunk_bytes}")
    import torch  # here, not at the top: a bad command line is answered without loading torch

    try:
        ck = torch.load(str(ckpt_path), map_location="cpu", weights_only=False)
        state = ck["model"]
    except Exception as exc:  # unpickling, not a dict, no "model" entry
        raise WaferDeskError(f"{ckpt_path}: not a WaferDesk checkpoint ({type(exc).__name__}: {exc})") from None
    model, fp16 = _to_fp16(state)
    packed = {"fp16": fp16, "torch": torch.__version__, "from": f"{run.name}/{CHECKPOINT}"}
    buf = io.BytesIO()
    torch.save({**{k: ck.get(k) for k in CHECKPOINT_KEYS}, "model": model, "packed": packed}, buf)
    blob = buf.getvalue()
    chunks = [blob[i : i + chunk_bytes] for i in range(0, len(blob), chunk_bytes)]
    meta, members = _meta_archive(run)

    parts = [{"file": _part_name(i), "size": len(c), "sha256": _sha256(c)} for i, c in enumerate(chunks)]
    manifest = {
        "format": FORMAT,
        "run": run.name,
        "step": ck.get("step"),
        "blob": {"file": BLOB, "size": len(blob), "sha256": _sha256(blob)},
        "parts": parts,
        "meta": {"file": META, "size": len(meta), "sha256": _sha256(meta), "members": members},
        "fp16_tensors": len(fp16),
        "torch": torch.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    manifest_bytes = (json.dumps(manifest, indent=1) + "\n").encode()

    ours = {p["file"] for p in parts} | {META, MANIFEST}
    present = sorted(p for p in out.iterdir() if p.is_file()) if out.is_dir() else []
    stale = [p for p in present if p.name.startswith(f"{BLOB}.part")]  # an earlier pack's parts: replaced
    others = [p for p in present if p.name not in ours and p not in stale]
    n_files = len(ours) + len(others)
    total = len(blob) + len(meta) + len(manifest_bytes) + sum(p.stat().st_size for p in others)
    if n_files > MAX_FILES or total > MAX_TOTAL_BYTES or len(meta) > MAX_FILE_BYTES:
        beside = f" (with {', '.join(p.name for p in others)} already there)" if others else ""
        raise WaferDeskError(
            f"{ckpt_path}: packed it needs {n_files} files, {_mib(total)} in {out}{beside}; the device tool brings "
            f"back at most {MAX_FILES} files, {_mib(MAX_TOTAL_BYTES)} together, {_mib(MAX_FILE_BYTES)} each "
            f"({len(parts)} parts of <= {chunk_bytes} bytes, {META} {_mib(len(meta))})"
        )

    out.mkdir(parents=True, exist_ok=True)
    for p in stale:
        p.unlink()
    written = []
    for part, data in zip(parts, chunks, strict=True):
        written.append(_write(out / part["file"], data))
    written.append(_write(out / META, meta))
    written.append(_write(out / MANIFEST, manifest_bytes))
    return written


def _write(path: Path, data: bytes) -> Path:
    with atomic_open(path, "wb") as fh:
        fh.write(data)
    return path


def _read_checked(path: Path, size: int, sha256: str) -> bytes:
    if not path.is_file():
        raise WaferDeskError(f"{path}: missing (the manifest lists it)")
    data = path.read_bytes()
    if len(data) != size or _sha256(data) != sha256:
        raise WaferDeskError(
            f"{path}: corrupt or incomplete ({len(data)} bytes, sha256 {_sha256(data)[:12]}...; "
            f"the manifest says {size} bytes, sha256 {sha256[:12]}...)"
        )
    return data


def _extract_meta(data: bytes, run: Path, source: Path) -> list[str]:
    """Write the archive's files into ``run``: plain files with plain names only (no paths, no
    links), so an archive cannot write outside the run directory."""
    names = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for m in tar.getmembers():
            if not m.isfile() or m.name != Path(m.name).name or m.name in ("", ".", "..", CHECKPOINT):
                raise WaferDeskError(f"{source}: refusing archive member {m.name!r} (only plain files, no paths)")
            f = tar.extractfile(m)
            _write(run / m.name, f.read() if f is not None else b"")
            names.append(m.name)
    return names


def unpack_run(packed_dir: str | Path, run_dir: str | Path) -> Path:
    """Rebuild a run directory from :func:`pack_run`'s files: ``best.pt`` (float32 again, plus
    the ``packed`` lineage) and the small files. Every part is checked against the manifest
    first. ``run_dir`` must be new or empty: nothing is overwritten. Returns ``run_dir``."""
    src, run = Path(packed_dir), Path(run_dir)
    manifest_path = src / MANIFEST
    if not manifest_path.is_file():
        raise WaferDeskError(f"{manifest_path}: no such file (not a packed run directory)")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        blob_info, parts, meta_info = manifest["blob"], manifest["parts"], manifest["meta"]
    except (ValueError, KeyError, TypeError) as exc:
        raise WaferDeskError(f"{manifest_path}: not a packed-run manifest ({type(exc).__name__}: {exc})") from None
    if manifest.get("format") != FORMAT:
        raise WaferDeskError(f"{manifest_path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    if run.exists() and any(run.iterdir()):
        raise WaferDeskError(f"{run}: not empty; unpack into a new run directory (nothing is overwritten)")

    blob = b"".join(_read_checked(src / p["file"], p["size"], p["sha256"]) for p in parts)
    if len(blob) != blob_info["size"] or _sha256(blob) != blob_info["sha256"]:
        raise WaferDeskError(f"{src}: the joined parts do not match the manifest's {BLOB} (sha256, size)")
    meta = _read_checked(src / meta_info["file"], meta_info["size"], meta_info["sha256"])
    import torch

    # our own file, its bytes checked against the manifest; train.py reads checkpoints the same way
    ck = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=False)
    fp16 = set(ck.get("packed", {}).get("fp16", ()))
    ck["model"] = {k: (v.float() if k in fp16 else v) for k, v in ck["model"].items()}

    run.mkdir(parents=True, exist_ok=True)
    _extract_meta(meta, run, src / meta_info["file"])
    with atomic_open(run / CHECKPOINT, "wb") as fh:
        torch.save(ck, fh)
    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m waferdesk.ml.transfer",
        description="Pack a run's best.pt into fp16 chunks that fit the device tool's limits, or unpack them.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("pack", help="RUN_DIR -> OUT_DIR: parts, run-meta.tar.gz, manifest.json")
    p.add_argument("run_dir", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--chunk-bytes", type=int, default=DEFAULT_CHUNK_BYTES, help="largest part (16 MiB - 4 KiB)")
    u = sub.add_parser("unpack", help="PACKED_DIR -> RUN_DIR: best.pt (float32) and the run's small files")
    u.add_argument("packed_dir", type=Path)
    u.add_argument("run_dir", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            files = pack_run(args.run_dir, args.out_dir, args.chunk_bytes)
            for f in files:
                print(f"wrote {f} ({_mib(f.stat().st_size)})")
            print(f"{len(files)} files, {_mib(sum(f.stat().st_size for f in files))} together")
        else:
            run = unpack_run(args.packed_dir, args.run_dir)
            for f in sorted(run.iterdir()):
                print(f"wrote {f} ({_mib(f.stat().st_size)})")
    except WaferDeskError as exc:
        print(f"waferdesk.ml.transfer {args.command}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
