"""The 8-class defect taxonomy, loaded from ``resources/taxonomy.json``.

One file holds the class names, their order (= the model's output channels and the label
values), colours, colour-blind-safe colours and shortcut keys, so that the generator, the
model, the app and the server can never disagree about what label ``3`` means.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import TaxonomyError
from .resources import resource_path

IGNORE = 255
"""Label value of cells that carry no class: pass dies, no-die cells, unlabelled fails."""


def _hex_to_rgb(value: str, where: str) -> tuple[int, int, int]:
    text = value.lstrip("#")
    if len(text) != 6:
        raise TaxonomyError(f"{where}: colour {value!r} is not #rrggbb")
    try:
        return (int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16))
    except ValueError:
        raise TaxonomyError(f"{where}: colour {value!r} is not #rrggbb") from None


@dataclass(frozen=True)
class DefectClass:
    index: int
    name: str
    key: str
    systematic: bool
    color: tuple[int, int, int]
    color_cb: tuple[int, int, int]
    description: str

    def rgb(self, colorblind: bool = False) -> tuple[int, int, int]:
        return self.color_cb if colorblind else self.color


@dataclass(frozen=True)
class VerdictDefaults:
    min_share: float
    min_dies: int
    random_min_density: float


@dataclass(frozen=True)
class Taxonomy:
    version: int
    classes: tuple[DefectClass, ...]
    die_colors: dict[str, tuple[int, int, int]]
    verdict: VerdictDefaults

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    def __len__(self) -> int:
        return len(self.classes)

    def index(self, name: str) -> int:
        """Index of a class by name; a clear error for an unknown one."""
        for c in self.classes:
            if c.name == name:
                return c.index
        raise TaxonomyError(f"unknown class {name!r}; known classes: {', '.join(self.names)}")

    def by_key(self, key: str) -> DefectClass | None:
        return next((c for c in self.classes if c.key == key), None)

    def palette(self, colorblind: bool = False) -> list[tuple[int, int, int]]:
        return [c.rgb(colorblind) for c in self.classes]


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Read and validate a taxonomy file (the shipped one by default)."""
    file = Path(path) if path is not None else resource_path("taxonomy.json")
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TaxonomyError(f"{file}: taxonomy file not found") from None
    except (OSError, ValueError) as exc:
        raise TaxonomyError(f"{file}: not a readable JSON taxonomy ({exc})") from None
    try:
        entries = raw["classes"]
        classes = tuple(
            DefectClass(
                index=i,
                name=str(c["name"]),
                key=str(c["key"]),
                systematic=bool(c["systematic"]),
                color=_hex_to_rgb(c["color"], f"{file}: class {c['name']}"),
                color_cb=_hex_to_rgb(c["color_cb"], f"{file}: class {c['name']}"),
                description=str(c.get("description", "")),
            )
            for i, c in enumerate(entries)
        )
        die_colors = {k: _hex_to_rgb(v, f"{file}: die_colors.{k}") for k, v in raw["die_colors"].items()}
        v = raw["verdict"]
        verdict = VerdictDefaults(
            min_share=float(v["min_share"]),
            min_dies=int(v["min_dies"]),
            random_min_density=float(v["random_min_density"]),
        )
        if int(raw.get("ignore_value", IGNORE)) != IGNORE:
            raise TaxonomyError(f"{file}: ignore_value must be {IGNORE}")
    except (KeyError, TypeError) as exc:
        raise TaxonomyError(f"{file}: missing or malformed field {exc}") from None
    names = [c.name for c in classes]
    if not classes or len(set(names)) != len(names):
        raise TaxonomyError(f"{file}: class names must be present and unique, got {names}")
    if len(classes) >= IGNORE:
        raise TaxonomyError(f"{file}: at most {IGNORE - 1} classes")
    for need in ("no_die", "pass", "fail"):
        if need not in die_colors:
            raise TaxonomyError(f"{file}: die_colors lacks {need!r}")
    return Taxonomy(int(raw.get("version", 1)), classes, die_colors, verdict)


@lru_cache(maxsize=1)
def default_taxonomy() -> Taxonomy:
    """The shipped taxonomy, read once per process."""
    return load_taxonomy()


def class_names() -> tuple[str, ...]:
    return default_taxonomy().names
