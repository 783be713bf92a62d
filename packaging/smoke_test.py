"""Smoke test of a built desktop archive, run the way a fab PC without Python would run it.

    .venv/bin/python packaging/smoke_test.py dist/WaferDesk-<version>-linux-x86_64-cpu.tar.gz

The archive is unpacked into a fresh temporary folder outside the checkout, and every command
runs the bundle's own ``WaferDesk`` executable with a bare environment (``env -i`` style:
``PATH=/usr/bin:/bin``, a fresh ``HOME``, an empty working folder, offscreen Qt): no virtual
environment, no ``PYTHONPATH``, no checkout on any path. Checked:

1. ``WaferDesk --version`` names the version, the cpu variant, the bundle and the provider;
   ``WaferDesk train`` says training is not part of this installation (exit 2).
2. ``WaferDesk predict <samples> --out DIR``: exit 0; ``summary.csv`` has one row per sample
   wafer (counted independently by this checkout's readers), each row a JSON file and a PNG
   picture; verdicts and per-class die counts equal those of this checkout's engine run on the
   same wafers with the same model (the bundle computes what a Python install computes).
3. ``WaferDesk --self-test``: the GUI opens a sample wafer, draws it (pixels checked), runs
   the model, puts variant and provider in the status bar, exits 0 on its own; every loaded
   module comes from the bundle; settings, logs, drafts and caches are in the fresh HOME's
   per-user folders, and nothing was written into the program folder.
4. Under Xvfb (when ``xvfb-run`` is installed) the same self-test on the real X11 plugin (xcb).

The model: the bundle's default model when it has one; otherwise (the default model is still
being trained) a tiny test model made with ``tests/model_fixtures.make_tiny_model`` and passed
with ``--model``; the output says which. This script is the test side: it needs the checkout's
Python environment (the ``dev`` extra) to count wafers, make the tiny model and compute the
reference; the bundle under test never sees it.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_MODEL = "waferdesk-unet-r50"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class SmokeError(Exception):
    pass


def check(cond: bool, what: str) -> None:
    if not cond:
        raise SmokeError(what)


class Bundle:
    """An unpacked archive and a bare environment to run it in."""

    def __init__(self, archive: Path, scratch: Path) -> None:
        self.scratch = scratch
        with tarfile.open(archive) as tar:
            tops = {m.name.split("/")[0] for m in tar.getmembers()}
            check(len(tops) == 1, f"{archive}: one top folder expected, found {sorted(tops)}")
            tar.extractall(scratch, filter="tar")
        self.dir = scratch / tops.pop()
        self.exe = self.dir / "WaferDesk"
        self.resources = self.dir / "_internal" / "waferdesk" / "_resources"
        self.home = scratch / "home"
        self.cwd = scratch / "work"
        self.home.mkdir()
        self.cwd.mkdir()

    def env(self, **extra: str) -> dict[str, str]:
        bare = {"PATH": "/usr/bin:/bin", "HOME": str(self.home), "LANG": "C.UTF-8", "QT_QPA_PLATFORM": "offscreen"}
        return {**bare, **extra}

    def run(self, *args: str, prefix: tuple[str, ...] = (), timeout: float = 300, **env: str):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [*prefix, str(self.exe), *args],
            check=False,
            env=self.env(**env),
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        dt = time.perf_counter() - t0
        label = " ".join(a if len(a) < 60 else "…" + a[-40:] for a in args)
        print(f"  $ WaferDesk {label}  -> exit {proc.returncode} in {dt:.1f} s")
        if proc.returncode != 0:
            print(proc.stdout[-4000:], proc.stderr[-6000:], sep="\n", file=sys.stderr)
        return proc

    def snapshot(self) -> dict[str, tuple[int, int]]:
        return {str(p.relative_to(self.dir)): (p.lstat().st_mtime_ns, p.lstat().st_size) for p in self.dir.rglob("*")}


def json_line(proc) -> dict:
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    check(bool(lines), f"no JSON line in the output:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return json.loads(lines[-1])


def test_version(b: Bundle, version: str) -> None:
    proc = b.run("--version")
    check(proc.returncode == 0, "--version failed")
    out = proc.stdout
    check(f"waferdesk {version} (cpu variant, bundle; onnxruntime " in out, f"--version: unexpected {out!r}")
    check("execution provider: CPUExecutionProvider" in out, f"--version names no provider: {out!r}")
    print("    " + out.strip().replace("\n", "\n    "))
    proc = b.run("train", "--run-dir", "run")  # training is not in the bundle: it must say so, not crash
    check(proc.returncode == 2 and "not part of this installation" in proc.stderr, f"train: {proc.stderr[-500:]!r}")
    print("    " + proc.stderr.strip().splitlines()[-1][:110] + "…")


def reference(samples: Path, model: Path) -> dict[tuple[str, int], tuple[str, dict]]:
    """(file name, index) -> (verdict, counts) from this checkout's engine on the same wafers."""
    from waferdesk.core.formats import expand_paths, read_any
    from waferdesk.core.inference import Segmenter

    seg = Segmenter(model, providers="cpu", cache=False)
    out = {}
    for path in expand_paths([samples]):
        recs = read_any(path)
        for i, pred in enumerate(seg.predict_many([r.wafer for r in recs])):
            out[(path.name, i)] = (str(pred.summary.verdict), dict(pred.summary.counts))
    return out


def test_predict(b: Bundle, model: Path, model_args: list[str]) -> int:
    from waferdesk.core.taxonomy import default_taxonomy

    out = b.scratch / "predictions"
    samples = b.resources / "samples"
    proc = b.run("predict", str(samples), "--out", str(out), *model_args)
    check(proc.returncode == 0, "predict failed")
    with open(out / "summary.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    expected = reference(samples, model)
    check(len(rows) == len(expected), f"summary.csv has {len(rows)} rows, the samples hold {len(expected)} wafers")
    jsons = sorted(out.glob("*.json"))
    check(len(jsons) == len(rows), f"{len(jsons)} JSON files for {len(rows)} rows")
    by_key = {}
    for path in jsons:
        data = json.loads(path.read_text(encoding="utf-8"))
        image = out / str(data.get("image"))
        is_png = image.is_file() and image.read_bytes()[:8] == PNG_MAGIC
        check(is_png, f"{path.name}: picture {image.name} missing or not a PNG")
        by_key[(Path(data["source"]).name, int(data["index"]))] = data
    names = default_taxonomy().names
    for row in rows:
        key = (Path(row["source"]).name, int(row["index"]))
        check(key in by_key, f"row {key} has no JSON file")
        check(key in expected, f"row {key} is not a sample wafer")
        verdict, counts = expected[key]
        got = {n: int(row[n]) for n in names}
        check(row["verdict"] == verdict, f"{key}: bundle verdict {row['verdict']!r}, Python install {verdict!r}")
        check(got == {n: int(counts[n]) for n in names}, f"{key}: bundle counts {got}, Python install {counts}")
    verdicts = sorted({r["verdict"] for r in rows})
    print(
        f"    {len(rows)} wafers: summary.csv, {len(jsons)} JSON + PNG; verdicts and counts equal to the "
        f"Python install's; verdicts seen: {', '.join(verdicts)}"
    )
    return len(rows)


def test_self_test(b: Bundle, model_args: list[str]) -> dict:
    before = b.snapshot()
    proc = b.run("--self-test", *model_args)
    result = json_line(proc)
    check(proc.returncode == 0 and result.get("ok"), f"self-test failed: {result.get('error')}")
    check(result["frozen"] and result["variant"] == "cpu", f"not the frozen cpu bundle: {result}")
    check(result.get("qt_platform") == "offscreen", f"Qt platform {result.get('qt_platform')}")
    model = result.get("model", {})
    check(model.get("status") == "ran", f"the model did not run: {model}")
    check(model.get("provider") == "CPUExecutionProvider", f"provider {model.get('provider')}")
    status = " | ".join(result.get("status_bar", []))
    check("CPU build" in status and "· CPU" in status, f"status bar lacks variant/provider: {status!r}")
    outside = result.get("modules_outside_bundle")
    check(outside == [], f"modules loaded from outside the bundle: {outside}")
    home = b.home.resolve()
    for key, path in result["paths"].items():
        if key == "program":
            check(Path(path).resolve() == b.dir.resolve(), f"program folder {path}, expected {b.dir}")
            continue
        p = Path(path).resolve()
        check(p.is_relative_to(home), f"{key} at {path}: not in the user's home {home}")
        check(not p.is_relative_to(b.dir.resolve()), f"{key} at {path}: inside the program folder")
    log = Path(result["paths"]["log"])
    check(log.is_file() and log.stat().st_size > 0, f"no log written at {log}")
    after = b.snapshot()
    changed = sorted(k for k in after if before.get(k) != after[k])
    check(not changed, f"the program folder was written to: {changed[:10]}")
    print(
        f"    drew {result['wafer']['title']} at {result['drawn_s']} s, model {model.get('version')} on "
        f"{model.get('provider')}: verdict {model.get('verdict')}; status bar: {status}"
    )
    where = {k: Path(result["paths"][k]).relative_to(home) for k in ("log", "config", "data")}
    print(
        f"    per-user files under HOME: log {where['log']}, config {where['config']}, data {where['data']}; "
        "the program folder is unchanged"
    )
    return result


def test_xcb(b: Bundle) -> str:
    xvfb = shutil.which("xvfb-run", path="/usr/bin:/bin")
    if not xvfb:
        return "skipped (xvfb-run not installed)"
    proc = b.run(
        "--self-test", "--no-model", prefix=(xvfb, "-a", "-s", "-screen 0 1600x1000x24"), QT_QPA_PLATFORM="xcb"
    )
    result = json_line(proc)
    check(proc.returncode == 0 and result.get("ok"), f"self-test under Xvfb failed: {result.get('error')}")
    check(result.get("qt_platform") == "xcb", f"Qt platform {result.get('qt_platform')}, expected xcb")
    return f"passed on {result['qt_platform']} (drawn at {result['drawn_s']} s)"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("archive", type=Path)
    ap.add_argument("--keep", action="store_true", help="keep the unpacked folder (printed)")
    args = ap.parse_args(argv)
    from waferdesk import __version__

    t0 = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="waferdesk-smoke-"))
    check(not scratch.resolve().is_relative_to(ROOT), "scratch folder inside the checkout")
    try:
        print(f"smoke test of {args.archive} in {scratch} (bare environment: PATH=/usr/bin:/bin, HOME={scratch}/home)")
        b = Bundle(args.archive, scratch)
        default = b.resources / "models" / f"{DEFAULT_MODEL}.onnx"
        if default.is_file():
            model, model_args = default, []
            print(f"model: the bundle's default model {default.name}")
        else:
            from tests.model_fixtures import make_tiny_model

            model = make_tiny_model(scratch / "model")
            model_args = ["--model", str(model)]
            print(
                "model: THE BUNDLE HAS NO DEFAULT MODEL; testing with the tiny test model "
                f"(tests/model_fixtures.make_tiny_model) passed as --model {model.name}"
            )
        steps = [
            ("--version", lambda: test_version(b, __version__)),
            ("predict the sample wafers headless", lambda: test_predict(b, model, model_args)),
            ("GUI self-test (offscreen)", lambda: test_self_test(b, model_args)),
            ("GUI self-test on X11 (Xvfb)", lambda: test_xcb(b)),
        ]
        passed = failed = skipped = 0
        for i, (name, step) in enumerate(steps, 1):
            print(f"{i}. {name}")
            try:
                note = step()
            except (SmokeError, subprocess.TimeoutExpired) as exc:
                failed += 1
                print(f"    FAILED: {exc}", file=sys.stderr)
                continue
            if isinstance(note, str) and note.startswith("skipped"):
                skipped += 1
            else:
                passed += 1
            if isinstance(note, str):
                print(f"    {note}")
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"smoke test of the bundle took {time.perf_counter() - t0:.0f} s")
    print(f"smoke: {passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.pop("WAFERDESK_RESOURCES", None)
    sys.exit(main())
