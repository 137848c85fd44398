"""Rows of the card: each property's value beside its reference, the deviation, the
tolerance and pass/fail (a property with no reference or check gets its value only)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Optional

from .references import AlloyEntry, ElementEntry, References

# key (as in references.yaml and ElementProperties.values), label, unit, format
PROPERTIES: tuple[tuple[str, str, str, str], ...] = (
    ("a0_angstrom", "a0", "Å", "{:.4f}"),
    ("bulk_modulus_gpa", "B (Birch–Murnaghan)", "GPa", "{:.1f}"),
    ("ev_local_minima", "E–V local minima", "", "{:d}"),
    ("ev_wiggle_mev_per_atom", "E–V wiggle (largest deviation from a quartic)", "meV/atom", "{:.2f}"),
    ("c11_gpa", "C11", "GPa", "{:.1f}"),
    ("c12_gpa", "C12", "GPa", "{:.1f}"),
    ("c44_gpa", "C44 (relaxed)", "GPa", "{:.1f}"),
    ("c44_unrelaxed_gpa", "C44 (unrelaxed)", "GPa", "{:.1f}"),
    ("bulk_modulus_elastic_gpa", "B = (C11 + 2 C12) / 3", "GPa", "{:.1f}"),
    ("vacancy_formation_ev", "vacancy formation (relaxed)", "eV", "{:.3f}"),
    ("vacancy_unrelaxed_formation_ev", "vacancy formation (unrelaxed)", "eV", "{:.3f}"),
    ("gamma_optical_thz", "Γ optical phonon", "THz", "{:.2f}"),
    ("phonon_min_thz", "lowest phonon on the path (< 0: imaginary)", "THz", "{:.2f}"),
    ("nve_stable", "NVE stable", "", "{}"),
    ("nve_min_distance_angstrom", "NVE smallest distance", "Å", "{:.3f}"),
    ("nve_drift_mev_per_atom_per_ps", "NVE energy drift", "meV/atom/ps", "{:.3f}"),
    ("nve_mean_temperature_k", "NVE mean temperature (2nd half)", "K", "{:.0f}"),
    # A binary alloy A_{1-x} B_x (references.yaml "alloys", validation/mixing.py).
    ("mixing_x0.25_mev_per_atom", "mixing energy, x = 0.25 (A3B, L1_2)", "meV/atom", "{:+.1f}"),
    ("mixing_x0.5_mev_per_atom", "mixing energy, x = 0.5 (AB, L1_0)", "meV/atom", "{:+.1f}"),
    ("mixing_x0.75_mev_per_atom", "mixing energy, x = 0.75 (AB3, L1_2)", "meV/atom", "{:+.1f}"),
)
LABELS = {key: (label, unit, fmt) for key, label, unit, fmt in PROPERTIES}


def part_of(key: str) -> str:
    """Which part of the card (``properties.PARTS``) computes ``key``."""
    if key.startswith(("c1", "c4", "bulk_modulus_elastic")):
        return "elastic"
    for prefix, part in (("vacancy", "vacancy"), ("gamma", "phonons"), ("phonon", "phonons"), ("nve", "nve"),
                         ("mixing", "mixing")):
        if key.startswith(prefix):
            return part
    return "ev"


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str
    value: Any
    reference: Any = None
    source: Optional[str] = None
    deviation: Optional[float] = None  # value - reference
    relative_deviation: Optional[float] = None  # (value - reference) / |reference|
    tolerance: Optional[str] = None
    passed: Optional[bool] = None  # None: nothing to hold it to

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compare(values: dict[str, Any], entry: ElementEntry | AlloyEntry, references: References,
            parts: tuple[str, ...]) -> list[Row]:
    """One row per property of ``PROPERTIES`` of the ``parts`` that were run: computed (a
    key of ``values``) or held to a reference or check (then a missing value fails). The
    reference-free checks are the elements' (an alloy has its mixing energies only)."""
    rows = []
    checks = references.checks if isinstance(entry, ElementEntry) else {}
    for key, label, unit, _ in PROPERTIES:
        criterion = entry.properties.get(key) or checks.get(key)
        if part_of(key) not in parts or (key not in values and criterion is None):
            continue
        value = values.get(key)
        if criterion is None:
            if value is not None:  # e.g. no optical phonon in a one-atom primitive cell
                rows.append(Row(key, label, unit, value))
            continue
        reference = criterion.value
        deviation = relative = None
        if isinstance(reference, (int, float)) and not isinstance(reference, bool) and isinstance(value, (int, float)):
            deviation = float(value - reference)
            relative = deviation / abs(reference) if reference else None
        rows.append(Row(key, label, unit, value, reference, criterion.source, deviation, relative,
                        criterion.tolerance.describe(), criterion.tolerance.passes(value, reference)))
    return rows
