"""``waferdesk coco export|import``: per-die labels as COCO JSON, on local files or a server.

Local (no server): ``export`` writes the labelled wafers of a file (any format the core
reads; ``.wdm`` keeps masks) as COCO; ``import`` puts a COCO file's masks onto the wafers of
a wafer file and writes a ``.wdm``. With ``--server URL`` both talk to a WaferDesk server
(``POST /annotations/export`` / ``/import``), signed in with ``WAFERDESK_TOKEN`` or
``--user`` (password from ``WAFERDESK_PASSWORD`` or asked for).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
from collections.abc import Iterator
from pathlib import Path

from ..core.errors import WaferDeskError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("coco", help="export / import per-die labels as COCO JSON (local files or a server)")
    verbs = p.add_subparsers(dest="coco_command", metavar="ACTION", required=True)

    e = verbs.add_parser("export", help="labels -> COCO JSON")
    e.add_argument("labels", nargs="?", type=Path, help="labelled wafer file (.wdm); leave out with --server")
    e.add_argument("--out", type=Path, required=True, help="COCO JSON file to write")
    e.add_argument("--lot", help="only wafers of this lot")
    _server_args(e)
    e.add_argument(
        "--status",
        default="approved",
        choices=("approved", "submitted", "draft", "rejected"),
        help="server: annotations of this status (default approved = ground truth)",
    )
    e.add_argument("--round", type=int, help="server: only wafers of this active-learning round")
    e.add_argument("--from", dest="date_from", help="server: annotations changed from this ISO date/datetime")
    e.add_argument("--to", dest="date_to", help="server: ... until this ISO date (inclusive) or datetime")
    e.set_defaults(func=run_export)

    i = verbs.add_parser("import", help="COCO JSON -> labelled wafers (.wdm) or server annotations")
    i.add_argument("coco", type=Path, help="COCO JSON file")
    i.add_argument(
        "--wafers",
        type=Path,
        help="local: the wafer file the COCO images are (matched by content hash, else lot + wafer id)",
    )
    i.add_argument("--out", type=Path, help="local: .wdm file to write (the wafers, with the imported masks)")
    _server_args(i)
    i.add_argument(
        "--status",
        default="submitted",
        choices=("draft", "submitted", "approved"),
        help="server: status of the imported annotations (default submitted)",
    )
    i.set_defaults(func=run_import)


def _server_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", metavar="URL", help="a WaferDesk server instead of local files")
    p.add_argument("--user", help="server: sign in as this user (else the token in WAFERDESK_TOKEN)")


@contextlib.contextmanager
def server_errors(url: str) -> Iterator[None]:
    """What a URL that is no WaferDesk server causes, as one line: a malformed URL (httpx.InvalidURL),
    a 2xx answer that is not JSON (a proxy's page), an error page without WaferDesk's JSON error."""
    from .main import require_extra

    require_extra("httpx", "app")
    import httpx

    from ..client.api import ServerError

    try:
        yield
    except httpx.InvalidURL as exc:
        raise WaferDeskError(f"--server {url}: not a valid URL ({exc})") from None
    except json.JSONDecodeError:
        raise WaferDeskError(f"--server {url}: the answer is not JSON; no WaferDesk server answers there") from None
    except ServerError as exc:
        if exc.code != "http_error":  # WaferDesk's own error: its message says what is wrong
            raise
        raise WaferDeskError(
            f"--server {url}: no WaferDesk server answers there (HTTP {exc.status}: {exc.message})"
        ) from None


def connect(args: argparse.Namespace):
    from .main import require_extra

    require_extra("httpx", "app")
    from ..client.api import ServerClient

    token = os.environ.get("WAFERDESK_TOKEN")
    if args.user:
        try:
            password = os.environ.get("WAFERDESK_PASSWORD") or getpass.getpass(
                f"password for {args.user}@{args.server}: "
            )
        except EOFError:  # a script: no terminal to ask on and nothing on stdin
            raise WaferDeskError(
                f"--user {args.user}: no password; set WAFERDESK_PASSWORD (there is no terminal to ask on)"
            ) from None
        return ServerClient.login(args.server, args.user, password)
    if token:
        return ServerClient(args.server, token)
    raise WaferDeskError(
        "--server needs credentials: set WAFERDESK_TOKEN or pass --user (password from WAFERDESK_PASSWORD or a prompt)"
    )


def run_export(args: argparse.Namespace) -> int:
    from ..core.coco import build_coco, write_coco
    from ..core.formats import read_any

    if args.server:
        if args.labels is not None:
            raise WaferDeskError("give a labels file or --server, not both")
        with server_errors(args.server), connect(args) as api:
            doc = api.export_coco(
                status=args.status, lot=args.lot, round=args.round, date_from=args.date_from, date_to=args.date_to
            )
    else:
        if args.labels is None:
            raise WaferDeskError("give the labelled wafer file to export (or --server URL)")
        for flag in ("round", "date_from", "date_to"):
            if getattr(args, flag) is not None:
                raise WaferDeskError(
                    f"--{flag.replace('date_', '')} filters server exports; local files have no "
                    "rounds or annotation dates"
                )
        records = [r for r in read_any(args.labels) if r.mask is not None]
        if args.lot is not None:
            records = [r for r in records if r.wafer.lot == args.lot]
        if not records:
            raise WaferDeskError(f"{args.labels}: no labelled wafers" + (f" in lot {args.lot!r}" if args.lot else ""))
        doc = build_coco((r.wafer, r.mask) for r in records)
    out = write_coco(args.out, doc)
    print(f"wrote {out}: {len(doc['images'])} images, {len(doc['annotations'])} annotations")
    return 0


def run_import(args: argparse.Namespace) -> int:
    if args.server:
        if args.wafers or args.out:
            raise WaferDeskError("--wafers/--out import into a local file; with --server the server's wafers are used")
        with server_errors(args.server), connect(args) as api:
            res = api.import_coco(args.coco.read_bytes(), status=args.status, name=args.coco.name)
        print(
            f"imported {args.coco} as {args.status}: {res['created']} created, {res['updated']} updated, "
            f"{res['unchanged']} unchanged"
        )
        return 0
    if not (args.wafers and args.out):
        raise WaferDeskError("local import needs --wafers WAFERS and --out LABELLED.wdm (or --server URL)")
    if args.out.suffix.lower() != ".wdm":  # the file is a .wdm archive whatever its name says
        raise WaferDeskError(f"--out must name a .wdm file, got {args.out}")
    return _import_local(args.coco, args.wafers, args.out)


def _import_local(coco: Path, wafers_path: Path, out: Path) -> int:
    from ..core.coco_import import match_image, read_coco, wafer_index
    from ..core.errors import ValidationError
    from ..core.formats import read_any, write_wdm
    from ..core.records import WaferRecord

    images = read_coco(coco)
    records = read_any(wafers_path)
    wafers = [r.wafer for r in records]
    index = wafer_index(wafers)
    masks: dict[int, object] = {}
    problems: list[str] = []
    for img in images:
        try:
            i = match_image(img, wafers, index)
            if i is None:
                raise ValidationError(
                    f"{img.name}: no wafer of {wafers_path} matches (content hash, or lot + wafer id)"
                )
            if i in masks:
                raise ValidationError(f"{img.name}: wafer {wafers[i].name} already has an image in the file")
            masks[i] = img.mask_for(wafers[i])
        except ValidationError as exc:
            problems.append(str(exc))
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise WaferDeskError(f"{coco}: {problems[0]}{more}; nothing was written")
    # wafers the file does not mention keep the mask they had
    result = [WaferRecord(r.wafer, masks.get(i, r.mask)) for i, r in enumerate(records)]  # type: ignore[arg-type]
    write_wdm(out, result)
    print(f"wrote {out}: {len(result)} wafers, {len(masks)} with masks from {coco.name}")
    return 0
