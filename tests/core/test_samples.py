"""The bundled sample wafers open, and the synthetic ones carry complete ground truth."""

from __future__ import annotations

from waferdesk.core.formats import READABLE_SUFFIXES, expand_paths, read_any
from waferdesk.core.realism import LABELS


def test_every_sample_file_reads(repo_root) -> None:
    folder = repo_root / "resources" / "samples"
    files = expand_paths([folder])
    assert {f.name for f in files} >= {
        "wm811k-examples.wdm",
        "synthetic-examples.wdm",
        "tester-bins.g85.xml",
        "die-list.csv",
    }
    for f in files:
        assert f.suffix in READABLE_SUFFIXES
        assert f.stat().st_size < 64 * 1024, f"{f.name} should stay a few KB"
        assert read_any(f), f.name


def test_real_samples_cover_every_label_and_keep_their_notice(repo_root) -> None:
    folder = repo_root / "resources" / "samples"
    recs = read_any(folder / "wm811k-examples.wdm")
    assert {r.wafer.label for r in recs} == set(LABELS)
    assert all(r.mask is None for r in recs)
    notice = (folder / "WM811K-NOTICE.md").read_text()
    assert "Jyh-Shing Roger Jang" in notice and "IEEE Transactions on Semiconductor Manufacturing" in notice


def test_synthetic_samples_have_complete_masks(repo_root) -> None:
    folder = repo_root / "resources" / "samples"
    recs = read_any(folder / "synthetic-examples.wdm") + read_any(folder / "die-list.csv")
    assert len(recs) >= 9
    for r in recs:
        assert r.mask is not None
        r.mask.validate(r.wafer, complete=True)
    assert len({r.wafer.label for r in recs}) >= 9  # one per class and mode, plus a mixed wafer
    (g85,) = read_any(folder / "tester-bins.g85.xml")
    assert g85.wafer.bin_pass == frozenset({1}) and len(set(g85.wafer.bins.ravel().tolist())) > 3
