"""Check a built desktop bundle: nothing it must not carry, everything it must, and its size.

    python packaging/check_bundle.py dist/WaferDesk [--variant cpu] [--budget-mb 450]

Forbidden packages (torch, the server and its web/database stack, training code, science stacks
the app does not use) are looked for everywhere they could hide: as Python modules in the
executable's PYZ archive (read with PyInstaller's own archive reader), and as folders, files or
``*.dist-info`` anywhere in the bundle. Required: the Qt platform plugins (xcb and offscreen on
Linux, windows on Windows), image-format plugins, ONNX Runtime's native library, the taxonomy,
the sample wafers, the icons, build-info.json of the right variant, and the default model with
its card when the build had one (its absence is announced, not failed: the model is trained
elsewhere). Exit status 1 on any failure; the size (unpacked, in MB = 10^6 bytes) is printed
and checked against the budget.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

FORBIDDEN = (
    "torch", "torchvision", "segmentation_models_pytorch", "timm", "onnx", "onnxscript",
    "fastapi", "starlette", "uvicorn", "sqlalchemy", "alembic", "psycopg", "psycopg2", "psycopg_binary",
    "pydantic", "pydantic_core", "redis", "kubernetes", "server", "waferdesk.ml",
    "matplotlib", "pandas", "sklearn", "scikit_learn", "scipy", "pycocotools", "pytest", "tkinter", "_tkinter",
)  # fmt: skip
FORBIDDEN_LIBS = ("libtorch", "libc10", "libcaffe2", "libtk", "libtcl")  # native parts of torch, Tk
DEFAULT_MODEL = "waferdesk-unet-r50"
RES = ("waferdesk", "_resources")


def _forbidden_name(name: str) -> str | None:
    for bad in FORBIDDEN:
        if name == bad or name.startswith(bad + "."):
            return bad
    return None


def pyz_modules(exe: Path) -> list[str]:
    """Names of the Python modules frozen into the executable's PYZ archive."""
    from PyInstaller.archive.readers import CArchiveReader

    pkg = CArchiveReader(str(exe))
    names = [n for n in pkg.toc if n.endswith(".pyz") or n == "PYZ-00.pyz"]
    if not names:
        raise SystemExit(f"{exe}: no PYZ archive inside (not a PyInstaller executable?)")
    return sorted(pkg.open_embedded_archive(names[0]).toc)


def find_forbidden(bundle: Path, modules: list[str]) -> list[str]:
    hits = []
    for mod in modules:
        bad = _forbidden_name(mod)
        if bad:
            hits.append(f"module {mod} ({bad})")
    for path in bundle.rglob("*"):
        rel = path.relative_to(bundle)
        parts = rel.parts[1:] if rel.parts[0] == "_internal" else rel.parts
        if not parts:
            continue
        name = parts[-1]
        names = [parts[0], ".".join(parts[:2])]  # a package folder (torch/...), a subpackage (waferdesk/ml/...)
        if name.endswith((".dist-info", ".egg-info")):
            names.append(name.split("-")[0].lower())  # distribution metadata: torch-2.14.1.dist-info
        if path.is_file():
            names.append(name.split(".")[0])  # extension modules anywhere: _tkinter.cpython-311-...so
            if name.startswith(FORBIDDEN_LIBS):
                hits.append(f"file {rel} ({name})")
        for n in names:
            bad = _forbidden_name(n)
            if bad:
                hits.append(f"file {rel} ({bad})")
                break
    return sorted(set(hits))


def required_files(bundle: Path, variant: str, windows: bool) -> dict[str, list[str]]:
    """What must be there: a description -> relative paths or glob patterns (any one match satisfies it)."""
    qt = "_internal/PySide6/plugins" if windows else "_internal/PySide6/Qt/plugins"
    res = "/".join(("_internal", *RES))
    lib = "dll" if windows else "so"
    pyext = "pyd" if windows else "so"
    need = {
        "executable": ["WaferDesk.exe"] if windows else ["WaferDesk"],
        "Qt platform plugin offscreen": [f"{qt}/platforms/{'' if windows else 'lib'}qoffscreen.{lib}"],
        "Qt image formats (ico, jpeg, svg)": [f"{qt}/imageformats/{'' if windows else 'lib'}qico.{lib}"],
        "ONNX Runtime native library": [f"_internal/onnxruntime/capi/onnxruntime_pybind11_state*.{pyext}"],
        "taxonomy": [f"{res}/taxonomy.json"],
        "sample wafers": [f"{res}/samples/synthetic-examples.wdm"],
        "app icon": [f"{res}/icons/waferdesk.png"],
        "build-info.json": [f"{res}/build-info.json"],
    }
    if windows:
        need["Qt platform plugin windows"] = [f"{qt}/platforms/qwindows.dll"]
        need["command-line executable"] = ["WaferDesk-cli.exe"]
    else:
        need["Qt platform plugin xcb"] = [f"{qt}/platforms/libqxcb.so"]
    if variant == "gpu":
        cuda = "onnxruntime_providers_cuda.dll" if windows else "libonnxruntime_providers_cuda.so"
        need["ONNX Runtime CUDA provider"] = [f"_internal/onnxruntime/capi/{cuda}"]
    return need


def glibc_needed(bundle: Path) -> str | None:
    """The newest glibc symbol version any binary of the bundle needs (Linux; None without objdump).

    PyInstaller copies the build machine's own libraries (libpython, libstdc++, libX11...), so
    the bundle runs on Linux systems whose glibc is at least this version.
    """
    objdump = shutil.which("objdump")
    if not objdump or sys.platform != "linux":
        return None
    newest: tuple[int, ...] = ()
    for path in bundle.rglob("*"):
        if not path.is_file() or path.is_symlink() or not (".so" in path.name or path.name == "WaferDesk"):
            continue
        out = subprocess.run([objdump, "-T", str(path)], check=False, capture_output=True, text=True).stdout
        for match in re.findall(r"GLIBC_(\d+(?:\.\d+)+)", out):
            newest = max(newest, tuple(int(x) for x in match.split(".")))
    return ".".join(map(str, newest)) if newest else None


def bundle_size(bundle: Path) -> int:
    return sum(p.lstat().st_size for p in bundle.rglob("*") if p.is_file() and not p.is_symlink())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle", type=Path, help="the one-folder bundle (dist/WaferDesk)")
    ap.add_argument("--variant", choices=("cpu", "gpu"), default="cpu")
    ap.add_argument("--budget-mb", type=float, default=None, help="fail above this unpacked size (MB)")
    ap.add_argument("--windows", action="store_true", default=sys.platform == "win32")
    args = ap.parse_args(argv)
    bundle: Path = args.bundle
    failures: list[str] = []

    exe = bundle / ("WaferDesk.exe" if args.windows else "WaferDesk")
    modules = pyz_modules(exe)
    forbidden = find_forbidden(bundle, modules)
    n_files = sum(1 for _ in bundle.rglob("*"))
    found = "NONE FOUND" if not forbidden else f"{len(forbidden)} found"
    print(f"scanned {len(modules)} frozen modules and {n_files} files for {len(FORBIDDEN)} forbidden packages: {found}")
    for hit in forbidden:
        failures.append(f"forbidden: {hit}")
    for needed in ("waferdesk.app.mainwindow", "waferdesk.cli.predict_cmd", "onnxruntime"):
        if needed not in modules:
            failures.append(f"missing module: {needed}")

    for what, options in required_files(bundle, args.variant, args.windows).items():
        if not any(p.is_file() for o in options for p in bundle.glob(o)):
            failures.append(f"missing {what}: {' or '.join(options)}")

    res = bundle.joinpath("_internal", *RES)
    try:
        info = json.loads((res / "build-info.json").read_text(encoding="utf-8"))
        if info.get("variant") != args.variant:
            failures.append(f"build-info.json says variant {info.get('variant')!r}, expected {args.variant!r}")
        print(f"build info: {info}")
    except (OSError, ValueError) as exc:
        failures.append(f"build-info.json unreadable: {exc}")
        info = {}
    model = res / "models" / f"{DEFAULT_MODEL}.onnx"
    if model.is_file():
        card = model.with_name(f"{DEFAULT_MODEL}.card.json")
        if not card.is_file():
            failures.append(f"default model without its card: {card}")
        print(f"default model: {model.name} ({model.stat().st_size / 1e6:.1f} MB) + {card.name}")
    else:
        print(
            "*** default model: NONE — this bundle has no default model (resources/models/"
            f"{DEFAULT_MODEL}.onnx was absent at build time); the app opens and labels maps, "
            "and runs a model only when given one (--model) ***"
        )

    if not args.windows:
        glibc = glibc_needed(bundle)
        print(
            f"runs on: x86_64 Linux with glibc >= {glibc or 'unknown (objdump not installed)'} "
            "(the build machine's libraries travel in the bundle)"
        )
    size_mb = bundle_size(bundle) / 1e6
    budget = ""
    if args.budget_mb:
        budget = f" (budget {args.budget_mb:.0f} MB: {'OK' if size_mb <= args.budget_mb else 'OVER BUDGET'})"
    print(f"size: {size_mb:.1f} MB unpacked{budget}")
    if args.budget_mb and size_mb > args.budget_mb:
        failures.append(f"size {size_mb:.1f} MB over the budget of {args.budget_mb:.0f} MB")

    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    print("bundle check: " + ("passed" if not failures else f"FAILED ({len(failures)})"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
