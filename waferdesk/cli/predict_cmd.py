"""``waferdesk predict FILES... --out DIR``: the headless batch job.

Reading runs in a thread ahead of the model, the model runs batches of equal canvas size
(:meth:`Segmenter.predict_many`), and pictures/JSON are written by a thread pool behind it,
so files and PNGs cost little next to the network. A file that cannot be read is reported
(stderr and ``DIR/errors.csv``) and skipped; the rest completes and ``summary.csv`` is
written, with ``embeddings.npy`` (one float32 row per summary row). Exit status: 0 when
every input was predicted, 1 when some inputs failed (the others are in ``summary.csv``),
2 when nothing could run (no model, bad arguments).
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ..core.errors import WaferDeskError
from .views_option import add_views_option

PARTIAL_FAILURE = 1


def register(sub: argparse._SubParsersAction) -> None:
    from ..core.inference.providers import PROVIDER_CHOICES

    p = sub.add_parser(
        "predict",
        help="segment wafer files with the model: overlay PNG + JSON per wafer, summary.csv",
        description=(
            "Segment every wafer in FILES (files or folders, any readable format). Writes per wafer "
            "<name>.png (overlay) and <name>.json, plus summary.csv (one row per wafer, input order), "
            "embeddings.npy and errors.csv (files that could not be read; they are skipped). Exit status: "
            "0 all predicted, 1 some inputs failed (the rest are in summary.csv), 2 nothing could run."
        ),
    )
    p.add_argument("files", nargs="+", type=Path, metavar="FILES", help="wafer files or folders (any readable format)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--model", type=Path, default=None, metavar="M", help="ONNX model (default: the shipped model)")
    p.add_argument("--no-images", action="store_true", help="do not write the overlay PNGs")
    p.add_argument("--batch-size", type=int, default=32, metavar="N", help="wafers per run (default 32)")
    p.add_argument("--provider", choices=PROVIDER_CHOICES, default="auto", help="execution provider (default auto)")
    p.add_argument("--threads", type=int, default=None, metavar="N", help="intra-op threads (default: physical cores)")
    add_views_option(p, "N times the network time; default: what the model card says")
    p.add_argument("--no-cache", action="store_true", help="do not use or fill the on-disk prediction cache")
    p.set_defaults(func=run)


_END = object()


def _reader(paths: list[Path], out: queue.Queue, stop: threading.Event) -> None:
    """Read files one by one ahead of the model; each item is (source, records) or (source, error)."""
    from ..core.formats import read_any

    try:
        for path in paths:
            if stop.is_set():
                break
            try:
                recs = read_any(path)
                item: tuple = (str(path), recs, None)
            except (WaferDeskError, OSError, ValueError) as exc:
                item = (str(path), None, exc)
            except Exception as exc:  # a reader's unexpected error: this file is skipped, never the batch
                item = (str(path), None, f"{path}: cannot read ({type(exc).__name__}: {exc})")
            out.put(item)
    finally:  # without the end marker the model loop would wait for more files forever
        out.put(_END)


def run(args: argparse.Namespace) -> int:
    from ..core.formats import expand_paths
    from ..core.inference import PredictionCache, Segmenter
    from .predict_output import (
        ERROR_COLUMNS,
        EmbeddingWriter,
        safe_stem,
        summary_columns,
        summary_row,
        unique_name,
        write_csv,
        write_wafer,
    )
    from .progress import bar

    if args.batch_size < 1:
        raise WaferDeskError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.threads is not None and args.threads < 1:  # 0 and below silently meant "physical cores"
        raise WaferDeskError(f"--threads must be at least 1, got {args.threads}")
    paths = expand_paths(args.files)
    if not paths:
        raise WaferDeskError(f"no readable wafer files in {', '.join(map(str, args.files))}")
    out_dir: Path = args.out
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WaferDeskError(f"{out_dir}: cannot create the output folder ({exc})") from None

    cache: PredictionCache | bool = False
    if not args.no_cache:
        from platformdirs import user_cache_dir

        try:
            cache = PredictionCache(directory=Path(user_cache_dir("waferdesk")) / "predictions")
        except OSError as exc:  # a cache that cannot be made is only slower, never an error
            print(f"waferdesk predict: no prediction cache ({exc.filename}: {exc.strerror or exc})", file=sys.stderr)
            cache = False
    seg = Segmenter(args.model, providers=args.provider, threads=args.threads, cache=cache, views=args.views)
    views = f", {seg.views} views averaged" if seg.views > 1 else ""
    print(
        f"model {seg.model_version} (sha256 {seg.model_sha256[:12]}){views}, {seg.threads} threads: "
        f"{seg.provider_note}",
        file=sys.stderr,
    )

    t0 = time.perf_counter()
    inbox: queue.Queue = queue.Queue(maxsize=8)
    stop = threading.Event()
    reader = threading.Thread(target=_reader, args=(paths, inbox, stop), daemon=True, name="predict-reader")
    reader.start()
    pending: deque[tuple[str, int, object, str]] = deque()  # (source, index, wafer, name) in input order
    errors: list[list[str]] = []
    stems: set[str] = set()  # file stems taken
    names: set[str] = set()  # output names taken (a file "a-0001" must not overwrite wafer 1 of "a")
    pb = bar(0, "predict")

    def wafers() -> Iterator:
        while (item := inbox.get()) is not _END:
            source, recs, exc = item
            if exc is not None:
                errors.append([source, str(exc)])
                pb.write(f"waferdesk predict: skipped {source}: {exc}", file=sys.stderr)
                continue
            stem = safe_stem(Path(source), stems)
            pb.total = (pb.total or 0) + len(recs)
            pb.refresh()
            for i, rec in enumerate(recs):
                name = unique_name(stem if len(recs) == 1 else f"{stem}-{i:04d}", names)
                pending.append((source, i, rec.wafer, name))
                yield rec.wafer

    rows: list[list] = []
    futures: deque[Future] = deque()
    engine_ms = 0.0
    n_cached = 0
    embeddings = EmbeddingWriter(out_dir / "embeddings.npy")
    try:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="predict-writer") as pool:
            for pred in seg.predict_many(wafers(), batch_size=args.batch_size):
                source, index, wafer, name = pending.popleft()
                rows.append(summary_row(source, index, wafer, pred))
                row = embeddings.add(pred.embedding)
                job = (out_dir, name, row, source, index, wafer, pred, not args.no_images)
                futures.append(pool.submit(write_wafer, *job))
                while futures and (futures[0].done() or len(futures) > 256):
                    futures.popleft().result()  # re-raises a write error (disk full...)
                if pred.cached:
                    n_cached += 1
                else:
                    engine_ms += pred.latency_ms
                pb.update(1)
            for f in futures:
                f.result()
    finally:  # also on an error or Ctrl-C: what was predicted so far is written
        stop.set()
        pb.close()
        embeddings.close()
        write_csv(out_dir / "summary.csv", summary_columns(), rows)
        if errors:
            write_csv(out_dir / "errors.csv", ERROR_COLUMNS, errors)
        else:
            (out_dir / "errors.csv").unlink(missing_ok=True)
    dt = time.perf_counter() - t0
    n = len(rows)
    rate = n / dt if dt > 0 else 0.0
    engine = f"{(n - n_cached) / (engine_ms / 1000):.0f} wafers/s" if engine_ms > 0 else "n/a"
    print(
        f"predicted {n} wafers from {len(paths) - len(errors)} of {len(paths)} files in {dt:.2f} s: "
        f"{rate:.1f} wafers/s end to end (engine alone {engine}; {n_cached} from cache); "
        f"{out_dir / 'summary.csv'}"
    )
    if errors:
        print(
            f"waferdesk predict: {len(errors)} file(s) failed and were skipped, see {out_dir / 'errors.csv'}",
            file=sys.stderr,
        )
        return PARTIAL_FAILURE
    return 0
