"""The references file (``references.yaml`` next to this module): per element the crystal
structure the card builds, the E-V scan range and cited PBE values with a tolerance each;
reference-free checks (``checks``) that hold for every element."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from ase.data import atomic_numbers, reference_states

from .errors import ValidationError

DEFAULT_REFERENCES = Path(__file__).with_name("references.yaml")
STRUCTURES = ("diamond", "fcc", "bcc")
CRITERIA = ("relative", "absolute", "equals", "max", "min")


@dataclass(frozen=True)
class Tolerance:
    """How close a value must be: ``relative``/``absolute`` to a reference value, or a
    reference-free ``equals``/``max``/``min``."""

    kind: str
    amount: Any

    def passes(self, value: Any, reference: Any = None) -> bool:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return False
        if self.kind == "equals":
            return value == self.amount
        if self.kind == "max":
            return value <= self.amount
        if self.kind == "min":
            return value >= self.amount
        deviation = abs(value - reference)
        bound = self.amount * abs(reference) if self.kind == "relative" else self.amount
        return deviation <= bound

    def describe(self) -> str:
        if self.kind == "relative":
            return f"± {100 * self.amount:g} %"
        if self.kind == "absolute":
            return f"± {self.amount:g}"
        return {"equals": "=", "max": "≤", "min": "≥"}[self.kind] + f" {self.amount}"


@dataclass(frozen=True)
class Reference:
    """One compared quantity: the reference ``value`` (None for a check) and its source."""

    value: Any
    tolerance: Tolerance
    source: Optional[str] = None
    note: Optional[str] = None


@dataclass(frozen=True)
class ElementEntry:
    symbol: str
    structure: str
    lattice_range_angstrom: tuple[float, float]
    properties: dict[str, Reference] = field(default_factory=dict)
    origin: str = "references file"


@dataclass(frozen=True)
class AlloyEntry:
    """A binary fcc alloy A_{1-x} B_x: its two elements, their lattice constants (Å, the
    start of Vegard's law for each cell's volume scan) and reference mixing energies."""

    name: str
    elements: tuple[str, str]
    lattice_angstrom: tuple[float, float]
    properties: dict[str, Reference] = field(default_factory=dict)


@dataclass(frozen=True)
class References:
    path: Path
    sources: dict[str, str]
    checks: dict[str, Reference]
    elements: dict[str, ElementEntry]
    alloys: dict[str, AlloyEntry] = field(default_factory=dict)

    def alloys_of(self, species: list[str]) -> list[AlloyEntry]:
        """The alloys both of whose elements are in ``species``."""
        return [alloy for alloy in self.alloys.values() if set(alloy.elements) <= set(species)]

    def entry(self, symbol: str, fallback: bool = True) -> Optional[ElementEntry]:
        """The element's entry; an element not in the file gets, when ``fallback``, the
        structure and lattice constant of ASE's ``reference_states`` (scanned ±10 %) and
        no reference values, or None when ASE's structure is not one the card builds."""
        if symbol in self.elements:
            return self.elements[symbol]
        if not fallback or symbol not in atomic_numbers:
            return None
        state = reference_states[atomic_numbers[symbol]] or {}
        if state.get("symmetry") not in STRUCTURES or "a" not in state:
            return None
        a = float(state["a"])
        return ElementEntry(symbol, state["symmetry"], (0.9 * a, 1.1 * a), {},
                            origin="ase.data.reference_states (no references)")


def _tolerance(raw: Any, where: str) -> Tolerance:
    if not isinstance(raw, dict) or len(raw) != 1 or next(iter(raw)) not in CRITERIA:
        raise ValidationError(f"{where}: tolerance must be one of {{{', '.join(CRITERIA)}: ...}}, got {raw!r}")
    (kind, amount), = raw.items()
    return Tolerance(kind, amount)


def _reference(raw: Any, where: str, needs_value: bool) -> Reference:
    if not isinstance(raw, dict) or "tolerance" not in raw:
        raise ValidationError(f"{where}: needs a mapping with a 'tolerance', got {raw!r}")
    tolerance = _tolerance(raw["tolerance"], where)
    value = raw.get("value")
    if needs_value and tolerance.kind in ("relative", "absolute") and not isinstance(value, (int, float)):
        raise ValidationError(f"{where}: a {tolerance.kind} tolerance needs a numeric 'value', got {value!r}")
    return Reference(value, tolerance, raw.get("source"), raw.get("note"))


def _element(symbol: str, raw: Any, sources: dict[str, str], where: str) -> ElementEntry:
    if symbol not in atomic_numbers:
        raise ValidationError(f"{where}: '{symbol}' is not a chemical symbol")
    if not isinstance(raw, dict) or raw.get("structure") not in STRUCTURES:
        raise ValidationError(f"{where}: 'structure' must be one of {STRUCTURES}, got {raw!r}")
    span = raw.get("lattice_range_angstrom")
    if not (isinstance(span, list) and len(span) == 2 and 0 < span[0] < span[1]):
        raise ValidationError(f"{where}: 'lattice_range_angstrom' must be [lo, hi] with 0 < lo < hi, got {span!r}")
    return ElementEntry(symbol, raw["structure"], (float(span[0]), float(span[1])),
                        _properties(raw.get("properties"), sources, where))


def _properties(raw: Any, sources: dict[str, str], where: str) -> dict[str, Reference]:
    properties = {}
    for key, value in (raw or {}).items():
        reference = _reference(value, f"{where}.properties.{key}", needs_value=True)
        if reference.source is not None and reference.source not in sources:
            raise ValidationError(f"{where}.properties.{key}: source '{reference.source}' is not in 'sources'")
        properties[key] = reference
    return properties


def _alloy(name: str, raw: Any, sources: dict[str, str], where: str) -> AlloyEntry:
    elements, lattice = (raw or {}).get("elements"), (raw or {}).get("lattice_angstrom")
    if not (isinstance(elements, list) and len(elements) == 2 and all(e in atomic_numbers for e in elements)
            and elements[0] != elements[1]):
        raise ValidationError(f"{where}: 'elements' must be two chemical symbols, got {elements!r}")
    if not (isinstance(lattice, list) and len(lattice) == 2 and all(isinstance(a, (int, float)) and a > 0
                                                                    for a in lattice)):
        raise ValidationError(f"{where}: 'lattice_angstrom' must be [a_A, a_B] in Å, got {lattice!r}")
    return AlloyEntry(name, (elements[0], elements[1]), (float(lattice[0]), float(lattice[1])),
                      _properties(raw.get("properties"), sources, where))


def load_references(path: str | Path | None = None) -> References:
    """Read and check a references file (default: the one shipped with this package)."""
    path = Path(path) if path is not None else DEFAULT_REFERENCES
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ValidationError(f"cannot read references file '{path}': {error}") from error
    if not isinstance(raw, dict):
        raise ValidationError(f"references file '{path}' must hold a mapping at the top")
    sources = {str(k): str(v) for k, v in (raw.get("sources") or {}).items()}
    checks = {key: _reference(value, f"{path.name}: checks.{key}", needs_value=False)
              for key, value in (raw.get("checks") or {}).items()}
    elements = {symbol: _element(symbol, value, sources, f"{path.name}: elements.{symbol}")
                for symbol, value in (raw.get("elements") or {}).items()}
    alloys = {name: _alloy(name, value, sources, f"{path.name}: alloys.{name}")
              for name, value in (raw.get("alloys") or {}).items()}
    return References(path, sources, checks, elements, alloys)
