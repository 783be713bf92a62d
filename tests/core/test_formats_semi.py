"""SEMI G85 / E142 XML wafer maps: the g85 package's examples, round trips, hostile XML."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from waferdesk.core.errors import FormatError
from waferdesk.core.formats import read_any, read_semi_xml, write_e142, write_g85
from waferdesk.core.synth import generate
from waferdesk.core.wafer import WaferMap

DATA = Path(__file__).parent / "data" / "g85"  # examples shipped in the g85 0.7 sdist (samples/)


@pytest.mark.parametrize("name", ["ex.xml", "ex2.xml"])
def test_reads_the_g85_package_examples(name) -> None:
    (rec,) = read_any(DATA / name)
    w = rec.wafer
    assert w.shape == (35, 40)
    assert (w.lot, w.wafer_id, w.product) == ("0050000", "123456705F2", "DEVICE01")
    assert w.die_pitch == pytest.approx((4.8006, 5.48412))  # DeviceSizeX/Y in microns -> mm
    assert w.notch == "down"
    assert w.bin_pass == frozenset({ord("G")})
    assert (w.n_dies, w.n_fail) == (830 + 256, 256)  # ex2.xml's BinCount says 256 X dies; ex.xml's 255 is off by one
    assert w.dies[0, 0] == 0 and w.dies[0, 14] == 2 and w.dies[0, 18] == 1  # row 1: 14 x '0', then XXXXG
    assert w.extra["bin_type"] == "ASCII"


def test_both_examples_hold_the_same_map() -> None:
    a, b = (read_semi_xml(DATA / n)[0].wafer for n in ("ex.xml", "ex2.xml"))
    assert np.array_equal(a.dies, b.dies) and np.array_equal(a.bins, b.bins)


def test_g85_round_trip_of_maps_with_and_without_bins(tmp_path) -> None:
    synth = [r.wafer for r in generate(3, seed=5)]
    rng = np.random.default_rng(1)
    codes = rng.integers(1, 40, size=(30, 31))
    codes[:2, :] = -1
    multi = WaferMap.from_bins(codes, {1, 2, 3}, lot="L7", wafer_id="W03", product="P1", notch="left", die_pitch=(5, 6))
    ascii_bins = read_semi_xml(DATA / "ex.xml")[0].wafer
    path = write_g85(tmp_path / "out.xml", [*synth, multi, ascii_bins])
    back = [r.wafer for r in read_any(path)]
    assert len(back) == 5
    for a, b in zip([*synth, multi, ascii_bins], back, strict=True):
        assert np.array_equal(a.dies, b.dies)
        assert (a.lot, a.wafer_id, a.product, a.notch) == (b.lot, b.wafer_id, b.product, b.notch)
    assert back[0].die_pitch == pytest.approx(synth[0].die_pitch)
    assert np.array_equal(back[3].bins, multi.bins) and back[3].bin_pass == multi.bin_pass
    assert back[3].extra["bin_type"] == "Decimal"
    assert np.array_equal(back[4].bins, ascii_bins.bins) and back[4].extra["bin_type"] == "ASCII"


def test_our_g85_opens_in_the_g85_package(tmp_path) -> None:
    g85 = pytest.importorskip("g85")
    w = WaferMap.from_bins(np.array([[-1, 1, 5], [1, 1, 12]]), {1}, lot="LOT", wafer_id="W1")
    path = write_g85(tmp_path / "o.xml", [w])
    with path.open() as fh:
        (m,) = g85.read(fh)
    dev = m.devices[0]
    assert dev.LotId == "LOT" and m.SubstrateId == "W1"
    assert dev.bin_pass == {1: True, 5: False, 12: False}
    assert dev.map == [[99, 1, 5], [1, 1, 12]]  # NullBin 99 where there is no die


E142 = """<?xml version="1.0" encoding="UTF-8"?>
<MapData xmlns="urn:semi-org:xsd.E142-1.V1005.SubstrateMap">
 <Layouts>
  <Layout LayoutId="WaferLayout" DefaultUnits="mm"><Dimension X="1" Y="1"/><DeviceSize X="200" Y="200"/>
   <ChildLayouts><ChildLayout LayoutId="Devices"/></ChildLayouts></Layout>
  <Layout LayoutId="Devices" DefaultUnits="micron"><Dimension X="5" Y="3"/><DeviceSize X="2500" Y="4000"/>
   <ProductId>PX</ProductId></Layout>
 </Layouts>
 <Substrates><Substrate SubstrateType="Wafer" SubstrateId="W-07">
  <LotId>LOT9</LotId><SlotNumber>7</SlotNumber></Substrate></Substrates>
 <SubstrateMaps>
  <SubstrateMap SubstrateType="Wafer" SubstrateId="W-07" LayoutSpecifier="WaferLayout/Devices" Orientation="180">
   <Overlay MapName="SortGrade" MapVersion="1">
    <BinCodeMap BinType="HexaDecimal" NullBin="FF">
     <BinDefinitions>
      <BinDefinition BinCode="01" BinQuality="Pass" BinCount="7"/>
      <BinDefinition BinCode="0A" Pick="true" BinCount="1"/>
      <BinDefinition BinCode="1F" Pick="false" BinCount="3"/>
     </BinDefinitions>
     <BinCode>FF01010AFF</BinCode>
     <BinCode>011F01011F</BinCode>
     <BinCode>FF01FF1FFF</BinCode>
    </BinCodeMap>
   </Overlay>
  </SubstrateMap>
 </SubstrateMaps>
</MapData>
"""


def test_reads_e142_with_pick_and_quality_and_writes_it_back(tmp_path) -> None:
    (tmp_path / "m.xml").write_text(E142)
    (rec,) = read_any(tmp_path / "m.xml")
    w = rec.wafer
    assert w.dies.tolist() == [[0, 1, 1, 1, 0], [1, 2, 1, 1, 2], [0, 1, 0, 2, 0]]
    assert w.bin_pass == frozenset({0x01, 0x0A})  # BinQuality Pass, or Pick where no quality is given
    assert (w.lot, w.wafer_id, w.product, w.notch, w.extra["slot"]) == ("LOT9", "W-07", "PX", "up", "7")
    assert w.die_pitch == pytest.approx((2.5, 4.0))
    out = write_e142(tmp_path / "again.e142", [w, *(r.wafer for r in generate(2, seed=3))])
    back = [r.wafer for r in read_any(out)]
    assert np.array_equal(back[0].bins, w.bins) and back[0].bin_pass == w.bin_pass
    assert (back[0].lot, back[0].product, back[0].notch) == ("LOT9", "PX", "up")
    assert back[0].die_pitch == pytest.approx((2.5, 4.0))
    assert all(
        np.array_equal(a.dies, b.dies) for a, b in zip([w, *(r.wafer for r in generate(2, seed=3))], back, strict=True)
    )


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE Maps [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
 <!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;">
]>
<Maps><Map SubstrateId="&g;"><Device BinType="ASCII" NullBin="0"><Data><Row>1</Row></Data></Device></Map></Maps>
"""

XXE = """<?xml version="1.0"?>
<!DOCTYPE Maps [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<Maps><Map SubstrateId="&secret;"><Device BinType="ASCII" NullBin="0">
<Bin BinCode="1" BinQuality="Pass"/><Data><Row>1</Row></Data></Device></Map></Maps>
"""


@pytest.mark.parametrize("text", [BILLION_LAUGHS, XXE], ids=["billion-laughs", "xxe"])
def test_entity_attacks_are_refused(tmp_path, text) -> None:
    path = tmp_path / "evil.xml"
    path.write_text(text)
    with pytest.raises(FormatError, match=r"evil\.xml: refused: the XML declares entities") as err:
        read_any(path)
    assert "root:" not in str(err.value)  # nothing of /etc/passwd leaks into the message


def _g85(rows: list[str], **attrs: str) -> str:
    a = {"BinType": "ASCII", "NullBin": ".", "Rows": str(len(rows)), "Columns": str(len(rows[0]))} | attrs
    attr_text = " ".join(f'{k}="{v}"' for k, v in a.items())
    body = "".join(f"<Row>{r}</Row>" for r in rows)
    return (
        f'<Maps><Map SubstrateId="W"><Device {attr_text}><Bin BinCode="1" BinQuality="Pass"/>'
        f'<Bin BinCode="X" BinQuality="Fail"/><Data>{body}</Data></Device></Map></Maps>'
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<Maps><Map><Device>", "not well-formed XML"),
        (_g85([".11.", "1X11", ".1."]), r"Map 1 row 3: 3 dies, but row 1 has 4"),
        (_g85([".11.", "1X11"], Rows="1000000000"), r"declares Rows=1000000000 but the data has 2"),
        (_g85(["1" * 5000]), r"row 1: 5000 dies, over the limit of 4096"),
        (_g85(["01 02", "03 04"], BinType="Integer2"), r"BinType 'Integer2' is not supported"),
        (_g85(["1 2 x"], BinType="Decimal", NullBin="0", Columns="3"), r"Map 1 row 1: 'x' is not a Decimal bin code"),
        (_g85(["11"], Orientation="north"), r"Orientation 'north' is not a number"),
        ("<Maps><Map/></Maps>", "without any <Map><Device>"),
        ("<Wafer><Die/></Wafer>", r"root element <Wafer> is neither"),
        ("", "not well-formed XML"),
    ],
)
def test_malformed_g85_gets_a_clear_error(tmp_path, text, message) -> None:
    path = tmp_path / "bad.xml"
    path.write_text(text)
    with pytest.raises(FormatError, match=r"bad\.xml: .*" + message):
        read_any(path)


def test_truncated_g85_file(tmp_path) -> None:
    data = (DATA / "ex.xml").read_bytes()
    (tmp_path / "cut.g85").write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"cut\.g85: not well-formed XML"):
        read_any(tmp_path / "cut.g85")


def test_undefined_codes_count_as_fails_and_are_listed(tmp_path) -> None:
    (tmp_path / "u.xml").write_text(_g85(["1Q1", "X11"]))
    (rec,) = read_any(tmp_path / "u.xml")
    assert rec.wafer.dies.tolist() == [[1, 2, 1], [2, 1, 1]]
    assert rec.wafer.extra["undefined_bins"] == "Q"
