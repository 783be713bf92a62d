"""read_any / write_any dispatch, folder expansion and PNG export."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from waferdesk.core.errors import FormatError, UnsupportedFormatError
from waferdesk.core.formats import READABLE_SUFFIXES, expand_paths, read_any, write_any, write_png
from waferdesk.core.formats.png import picture
from waferdesk.core.render import auto_cell
from waferdesk.core.synth import generate
from waferdesk.core.taxonomy import IGNORE, default_taxonomy


@pytest.mark.parametrize("suffix", [".wdm", ".npz", ".xml", ".g85", ".e142", ".csv", ".txt"])
def test_every_writable_format_reads_back(tmp_path, suffix) -> None:
    recs = list(generate(3, seed=21))
    (path,) = write_any(tmp_path / f"w{suffix}", recs)
    back = read_any(path)
    assert len(back) == 3
    for a, b in zip(recs, back, strict=True):
        rows, cols = np.nonzero(a.wafer.dies)
        crop = a.wafer.dies[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        assert np.array_equal(b.wafer.dies, crop if suffix in (".csv", ".txt") else a.wafer.dies)


def test_readable_suffixes_are_all_dispatched(tmp_path) -> None:
    recs = list(generate(1, seed=2))
    for suffix in READABLE_SUFFIXES:
        if suffix in (".pkl", ".pickle"):
            continue  # written by pandas, covered in test_formats_wm811k
        target = {".e142": ".e142", ".g85": ".g85"}.get(suffix, suffix)
        (path,) = write_any(tmp_path / f"f{target}", recs)
        assert read_any(path)[0].wafer.n_dies == recs[0].wafer.n_dies, suffix


def test_content_wins_over_a_misleading_suffix(tmp_path) -> None:
    recs = list(generate(2, seed=1))
    (wdm,) = write_any(tmp_path / "a.wdm", recs)
    (xml,) = write_any(tmp_path / "a.xml", recs)
    (npz,) = write_any(tmp_path / "a.npz", recs)
    for src, name in ((wdm, "x.bin"), (xml, "x.dat"), (npz, "y.wdm")):
        renamed = tmp_path / name
        renamed.write_bytes(src.read_bytes())
        assert len(read_any(renamed)) == 2, name


def test_unreadable_things_get_clear_errors(tmp_path) -> None:
    (png,) = write_any(tmp_path / "p.png", list(generate(1, seed=0)))
    with pytest.raises(UnsupportedFormatError, match=r"p\.png: PNG pictures .* cannot be read"):
        read_any(png)
    (tmp_path / "notes.doc").write_text("hello")
    with pytest.raises(UnsupportedFormatError, match=r"notes\.doc: unsupported file type '\.doc'"):
        read_any(tmp_path / "notes.doc")
    with pytest.raises(FormatError, match=r"missing\.csv: cannot open"):
        read_any(tmp_path / "missing.csv")
    with pytest.raises(FormatError, match="is a folder"):
        read_any(tmp_path)
    (tmp_path / "broken.wdm").write_bytes(b"PK\x03\x04" + b"\0" * 50)
    with pytest.raises(FormatError, match=r"broken\.wdm: not a WaferDesk \.wdm file"):
        read_any(tmp_path / "broken.wdm")
    with pytest.raises(UnsupportedFormatError, match=r"cannot write '\.doc' files"):
        write_any(tmp_path / "x.doc", [])


def test_expand_paths_lists_readable_files_only(tmp_path) -> None:
    recs = list(generate(1, seed=0))
    (tmp_path / "sub").mkdir()
    write_any(tmp_path / "sub" / "a.csv", recs)
    write_any(tmp_path / "b.wdm", recs)
    write_any(tmp_path / "c.png", recs)
    (tmp_path / "readme.md").write_text("x")
    found = expand_paths([tmp_path])
    assert [p.name for p in found] == ["b.wdm", "a.csv"]
    assert all(read_any(p) for p in found)


def test_png_is_crisp_and_shows_the_mask(tmp_path) -> None:
    rec = next(generate(1, seed=7, start=3))
    w, m = rec.wafer, rec.mask
    cell = auto_cell(w.shape, 256)
    plain = np.asarray(Image.open(write_png(tmp_path / "p.png", w, target=256)).convert("RGB"))
    assert plain.shape[:2] == (w.shape[0] * cell, w.shape[1] * cell)  # integer scaling, nothing resampled
    tax = default_taxonomy()
    r, c = np.argwhere(w.dies == 2)[0]
    centre = (r * cell + cell // 2, c * cell + cell // 2)
    assert tuple(plain[centre]) == tax.die_colors["fail"]
    over = np.asarray(Image.open(write_png(tmp_path / "m.png", w, m, target=256)).convert("RGB"))
    cls = m.labels[r, c]
    assert cls != IGNORE
    want = np.array(tax.classes[cls].color) * 0.85 + np.array(tax.die_colors["fail"]) * 0.15
    assert np.abs(over[centre].astype(float) - want).max() <= 1
    legend = picture(w, m, target=256, legend=True)
    assert legend.shape[0] > plain.shape[0] and legend.shape[1] >= plain.shape[1]
    files = write_any(tmp_path / "many.png", list(generate(3, seed=1)))
    assert [f.name for f in files] == ["many-0001.png", "many-0002.png", "many-0003.png"]
