"""``waferdesk coco export|import`` on local files: pycocotools reads the export back to the
masks, export -> import -> export is identical, and bad input is one line with exit 2."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pycocotools.coco import COCO

from waferdesk.cli import main
from waferdesk.core.formats import read_any, write_wdm
from waferdesk.core.records import WaferRecord
from waferdesk.core.synth import generate


@pytest.fixture
def files(tmp_path):
    recs = list(generate(5, seed=61))
    labelled = write_wdm(tmp_path / "labels.wdm", recs)
    # the same wafers without masks; one of them keeps an old mask the COCO file does not mention
    bare = write_wdm(tmp_path / "wafers.wdm", [WaferRecord(r.wafer) for r in recs[:4]] + [recs[4]])
    return tmp_path, recs, labelled, bare


def _doc(path):
    d = json.loads(path.read_text())
    d["info"].pop("date_created")
    return d


def test_export_import_export_round_trip(files, capsys) -> None:
    tmp, recs, labelled, bare = files
    assert main(["coco", "export", str(labelled), "--out", str(tmp / "c1.json")]) == 0
    assert "5 images" in capsys.readouterr().out
    coco = COCO(str(tmp / "c1.json"))
    for img in coco.loadImgs(coco.getImgIds()):
        rec = recs[img["id"] - 1]
        got = np.full(rec.wafer.shape, 255, np.uint8)
        for a in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            got[coco.annToMask(a).astype(bool)] = a["category_id"] - 1
        assert np.array_equal(got, rec.mask.labels)
    # import only the first four images; the fifth wafer keeps the mask it had
    doc = json.loads((tmp / "c1.json").read_text())
    doc["images"] = doc["images"][:4]
    doc["annotations"] = [a for a in doc["annotations"] if a["image_id"] <= 4]
    (tmp / "c4.json").write_text(json.dumps(doc))
    assert main(["coco", "import", str(tmp / "c4.json"), "--wafers", str(bare), "--out", str(tmp / "back.wdm")]) == 0
    back = read_any(tmp / "back.wdm")
    assert all(np.array_equal(b.mask.labels, r.mask.labels) for b, r in zip(back, recs, strict=True))
    assert main(["coco", "export", str(tmp / "back.wdm"), "--out", str(tmp / "c2.json")]) == 0
    assert _doc(tmp / "c2.json") == _doc(tmp / "c1.json")


def test_lot_filter_and_errors(files, capsys) -> None:
    tmp, _recs, labelled, bare = files
    assert main(["coco", "export", str(labelled), "--out", str(tmp / "x.json"), "--lot", "nope"]) == 2
    assert "no labelled wafers in lot 'nope'" in capsys.readouterr().err
    assert main(["coco", "export", str(labelled), "--out", str(tmp / "x.json"), "--round", "1"]) == 2
    assert "--round filters server exports" in capsys.readouterr().err
    assert main(["coco", "import", str(tmp / "missing.json"), "--wafers", str(bare), "--out", str(tmp / "o.wdm")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.json: file not found" in err
    # an image whose wafer is not in the file: nothing is written
    main(["coco", "export", str(labelled), "--out", str(tmp / "c.json")])
    other = write_wdm(tmp / "other.wdm", list(generate(2, seed=62)))
    assert main(["coco", "import", str(tmp / "c.json"), "--wafers", str(other), "--out", str(tmp / "o.wdm")]) == 2
    assert "no wafer of" in capsys.readouterr().err and not (tmp / "o.wdm").exists()
    assert main(["coco", "import", str(tmp / "c.json")]) == 2
    assert "needs --wafers" in capsys.readouterr().err
    assert main(["coco", "export", "--out", str(tmp / "s.json"), "--server", "http://127.0.0.1:9"]) == 2
    assert "WAFERDESK_TOKEN" in capsys.readouterr().err


def test_a_malformed_server_url_is_one_line(files, capsys, monkeypatch) -> None:
    """httpx.InvalidURL (not an httpx.HTTPError) used to end in a traceback with exit 1."""
    tmp, _recs, _labelled, _bare = files
    monkeypatch.setenv("WAFERDESK_TOKEN", "t")
    assert main(["coco", "export", "--server", "http://[::1", "--out", str(tmp / "s.json")]) == 2
    err = capsys.readouterr().err
    assert "--server http://[::1: not a valid URL" in err and "Traceback" not in err
    assert not (tmp / "s.json").exists()


def test_a_server_that_is_not_waferdesk_is_one_line(files, capsys, monkeypatch) -> None:
    """A proxy's HTML page used to end in a JSONDecodeError traceback (200) or a multi-line
    error holding the page (an error status)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Proxy(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            body = b"<html>\n<body>\nplease sign in\n</body>\n</html>\n"
            self.send_response(502 if self.path == "/auth/login" else 200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Proxy)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    tmp = files[0]
    try:
        monkeypatch.setenv("WAFERDESK_TOKEN", "t")
        assert main(["coco", "export", "--server", url, "--out", str(tmp / "s.json")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "the answer is not JSON; no WaferDesk server answers there" in err, err
        monkeypatch.setenv("WAFERDESK_PASSWORD", "p")
        assert main(["coco", "export", "--server", url, "--user", "eng", "--out", str(tmp / "s.json")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "no WaferDesk server answers there (HTTP 502: " in err, err
        assert "please sign in" in err
    finally:
        httpd.shutdown()
    assert not (tmp / "s.json").exists()


def test_user_without_a_password_in_a_script_is_one_line(files, capsys, monkeypatch) -> None:
    """getpass raises EOFError when there is no terminal and stdin is empty (a cron job): a traceback."""
    from waferdesk.cli import coco_cmd

    def no_terminal(_prompt: str) -> str:
        raise EOFError

    monkeypatch.delenv("WAFERDESK_PASSWORD", raising=False)
    monkeypatch.setattr(coco_cmd.getpass, "getpass", no_terminal)
    tmp = files[0]
    args = ["coco", "export", "--server", "http://127.0.0.1:9", "--user", "eng", "--out", str(tmp / "s.json")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--user eng: no password; set WAFERDESK_PASSWORD" in err
