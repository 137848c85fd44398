"""The property card: for each element of a model (or of any ASE calculator), the
properties of ``properties.py`` beside the references of ``references.yaml``, written as
``property_card.md``, ``property_card.json`` and one PNG per curve."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
from ase.calculators.calculator import Calculator

from eipnn_calc.calculator import EIPNNCalculator
from eipnn_calc.errors import EIPNNError
from eipnn_calc.shipped import resolve_model

from . import plots
from .comparison import compare
from .errors import ValidationError
from .properties import PARTS, ElementProperties, element_properties
from .mixing import mixing_curve
from .references import AlloyEntry, ElementEntry, References, load_references
from .report import card_markdown
from .settings import CardSettings

CARD_MARKDOWN, CARD_JSON = "property_card.md", "property_card.json"


def select_elements(species: list[str], element: Optional[str], references: References
                    ) -> tuple[list[ElementEntry], dict[str, str]]:
    """The elements to card and those skipped, with why. ``element`` None: every species
    with an entry in the references file. A named ``element`` must be a species of the
    model; one missing from the file falls back to ASE's reference state (no comparison)."""
    if element is not None:
        if element not in species:
            raise ValidationError(f"element '{element}' is not in the model, which knows only {', '.join(species)}")
        entry = references.entry(element, fallback=True)
        if entry is None:
            raise ValidationError(f"element '{element}' has no structure in '{references.path}' and ASE's "
                                  "reference state is not diamond, fcc or bcc: add it to the references file")
        return [entry], {}
    chosen, skipped = [], {}
    for symbol in species:
        entry = references.entry(symbol, fallback=False)
        if entry is None:
            skipped[symbol] = (f"no structure for {symbol} in {references.path.name} "
                               "(name it with --element to use ASE's reference state)")
        else:
            chosen.append(entry)
    return chosen, skipped


def _to_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return _to_json(value.tolist())
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _verdict(rows: list) -> dict[str, Any]:
    """The rows of a card section and what they say: checks judged, passed, failed."""
    judged = [row for row in rows if row.passed is not None]
    return {"rows": [row.to_dict() for row in rows], "num_checks": len(judged),
            "num_passed": sum(bool(row.passed) for row in judged),
            "passed": all(row.passed for row in judged) if judged else None,
            "failed": [row.key for row in judged if not row.passed]}


def _element_record(result: ElementProperties, entry: ElementEntry, references: References,
                    parts: tuple[str, ...], out_dir: Path) -> dict[str, Any]:
    rows = compare(result.values, entry, references, parts)
    figures = {}
    symbol = entry.symbol
    reference_of = lambda key: entry.properties[key].value if key in entry.properties else None  # noqa: E731
    if result.ev is not None:
        figures["ev"] = f"ev_{symbol}.png"
        plots.ev_plot(result.ev, result.eos, reference_of("a0_angstrom"), out_dir / figures["ev"],
                      f"{symbol} ({entry.structure}): E–V")
    if result.bands is not None:
        figures["phonons"] = f"phonons_{symbol}.png"
        plots.phonon_plot(result.bands, reference_of("gamma_optical_thz"), out_dir / figures["phonons"],
                          f"{symbol} ({entry.structure}) phonons")
    if result.nve is not None:
        figures["nve"] = f"nve_{symbol}.png"
        plots.nve_plot(result.nve, out_dir / figures["nve"], f"{symbol} NVE")
    curves: dict[str, Any] = {}
    if result.ev is not None:
        curves["ev"] = {"lattice_angstrom": result.ev.lattice_angstrom,
                        "energy_ev_per_atom": result.ev.energy_ev_per_atom,
                        "eos_points": result.eos.num_points if result.eos else 0}
    if result.bands is not None:
        curves["phonons"] = {"path": result.bands.path_labels, "gamma_thz": result.bands.gamma_thz,
                             "supercell": result.bands.supercell}
    if result.nve is not None:
        n = result.nve
        curves["nve"] = {"steps_done": n.steps_done, "steps_asked": n.steps_asked, "num_atoms": n.num_atoms,
                         "timestep_fs": n.timestep_fs, "time_ps": n.time_ps,
                         "total_energy_ev_per_atom": n.total_energy_ev_per_atom,
                         "temperature_k": n.temperature_k,
                         "max_energy_excursion_mev_per_atom": n.max_energy_excursion_mev_per_atom}
    return {
        "structure": entry.structure, "origin": entry.origin,
        "lattice_range_angstrom": list(entry.lattice_range_angstrom),
        "has_references": bool(entry.properties),
        "values": result.values, **_verdict(rows),
        "notes": result.notes, "seconds": result.seconds, "details": {**result.details, **curves},
        "figures": figures,
    }


def _alloy_record(calculator: Calculator, alloy: AlloyEntry, references: References, settings: CardSettings,
                  out_dir: Path) -> dict[str, Any]:
    """The mixing energies of ``alloy`` (validation/mixing.py) beside its references."""
    started, notes, values, details, figures = time.perf_counter(), {}, {}, {}, {}
    a, b = alloy.elements
    try:
        curve = mixing_curve(calculator, a, b, *alloy.lattice_angstrom, settings.mixing_points, settings.mixing_span)
    except EIPNNError as error:  # a poor model: no minimum in a scan (ValidationError), atoms too close
        notes["mixing"] = f"failed: {error}"
    else:
        values = {f"mixing_x{x:g}_mev_per_atom": float(e)
                  for x, e in zip(curve.fractions[1:-1], curve.mixing_mev_per_atom[1:-1])}
        details = {"fractions": curve.fractions, "lattice_angstrom": curve.lattice_angstrom,
                   "energy_ev_per_atom": curve.energy_ev_per_atom, "mixing_mev_per_atom": curve.mixing_mev_per_atom}
        reference = {x: alloy.properties[f"mixing_x{x:g}_mev_per_atom"].value for x in curve.fractions
                     if f"mixing_x{x:g}_mev_per_atom" in alloy.properties}
        figures["mixing"] = f"mixing_{alloy.name}.png"
        plots.mixing_plot(curve.fractions, curve.mixing_mev_per_atom, reference, out_dir / figures["mixing"],
                          f"{a}$_{{1-x}}${b}$_x$ (fcc, ordered cells): mixing energy")
    rows = compare(values, alloy, references, ("mixing",))
    return {"structure": "fcc, ordered 4-atom cells", "elements": list(alloy.elements),
            "has_references": bool(alloy.properties), "values": values, **_verdict(rows), "notes": notes,
            "seconds": {"mixing": time.perf_counter() - started}, "details": details, "figures": figures}


def calculator_card(calculator: Calculator, entries: list[ElementEntry], out_dir: str | Path,
                    settings: CardSettings | None = None, references: References | None = None,
                    title: str = "calculator", header: dict[str, Any] | None = None,
                    md_calculator: Calculator | None = None, skipped: dict[str, str] | None = None,
                    parts: tuple[str, ...] = PARTS, alloys: list[AlloyEntry] | None = None) -> dict[str, Any]:
    """The card of any ASE ``calculator`` for ``entries`` (and the mixing energies of
    ``alloys``); writes ``out_dir`` and returns the card as the dict of
    ``property_card.json``. ``parts``: a subset of ``PARTS`` (the E-V part always runs: it
    gives the a0 the others use)."""
    settings = settings or CardSettings()
    references = references or load_references()
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise ValidationError(f"unknown card parts {sorted(unknown)}; known: {', '.join(PARTS)}")
    parts = tuple(part for part in PARTS if part == "ev" or part in parts)  # E-V gives a0: always
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    elements = {}
    for entry in entries:
        result = element_properties(calculator, entry, settings, md_calculator, parts)
        elements[entry.symbol] = _element_record(result, entry, references, parts, out_dir)
    mixtures = {alloy.name: _alloy_record(calculator, alloy, references, settings, out_dir) for alloy in alloys or []}
    records = [*elements.values(), *mixtures.values()]
    verdicts = [e["passed"] for e in records if e["passed"] is not None]
    used_sources = sorted({row["source"] for e in records for row in e["rows"] if row["source"]})
    card = _to_json({
        "title": title, "header": header or {}, "quick": settings.is_quick,
        "settings": settings.to_dict(), "parts": list(parts), "references_file": str(references.path),
        "elements": elements, "alloys": mixtures, "skipped": skipped or {},
        "sources": {key: references.sources[key] for key in used_sources},
        "passed": all(verdicts) if verdicts else None,
        "seconds_total": time.perf_counter() - started,
    })
    (out_dir / CARD_JSON).write_text(json.dumps(card, indent=2) + "\n")
    (out_dir / CARD_MARKDOWN).write_text(card_markdown(card))
    return card


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def property_card(model_path: str | Path, element: Optional[str] = None, out_dir: str | Path | None = None,
                  settings: CardSettings | None = None, references: str | Path | References | None = None,
                  parts: tuple[str, ...] = PARTS, device: str = "cpu") -> dict[str, Any]:
    """The card of an exported model file, computed through ``EIPNNCalculator`` only
    (``settings.dtype`` for every part, ``settings.md_dtype`` for the MD). ``element`` None:
    every species of the model with a structure in the references file. ``out_dir`` None:
    ``property_card/`` next to the model file. Returns the card (``property_card.json``)."""
    settings = settings or CardSettings()
    if not isinstance(references, References):
        references = load_references(references)
    model_path = resolve_model(model_path)  # a file, or the name of a shipped model
    calculator = EIPNNCalculator(model_path, device=device, dtype=settings.dtype)
    md_calculator = (calculator if settings.md_dtype == settings.dtype
                     else EIPNNCalculator(model_path, device=device, dtype=settings.md_dtype))
    meta = calculator.metadata
    entries, skipped = select_elements(list(meta.species), element, references)
    alloys = references.alloys_of(list(meta.species)) if element is None else []
    header = {"model_path": str(model_path), "sha256": _sha256(model_path), "species": meta.species,
              "cutoff_angstrom": meta.cutoff_angstrom, "num_layers": meta.num_layers,
              "model_dtype": meta.dtype, "model": meta.model, "provenance": meta.provenance,
              "versions": meta.versions, "device": device}
    out_dir = Path(out_dir) if out_dir is not None else model_path.parent / "property_card"
    return calculator_card(calculator, entries, out_dir, settings, references, model_path.name, header,
                           md_calculator, skipped, parts, alloys)


HEADLINE_KEYS = ("a0_angstrom", "bulk_modulus_gpa", "ev_local_minima", "ev_wiggle_mev_per_atom", "c11_gpa",
                 "c12_gpa", "c44_gpa", "vacancy_formation_ev", "gamma_optical_thz", "nve_stable",
                 "nve_drift_mev_per_atom_per_ps", "nve_min_distance_angstrom")


def headline(card: dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """The card's headline numbers (for results.json)."""
    return {
        "dir": str(out_dir), "passed": card["passed"], "quick": card["quick"],
        "seconds_total": card["seconds_total"], "skipped": card["skipped"],
        "elements": {
            symbol: {**{k: e["values"][k] for k in HEADLINE_KEYS if k in e["values"]},
                     "passed": e["passed"], "num_checks": e["num_checks"], "failed": e["failed"],
                     "seconds": e["seconds"]}
            for symbol, e in card["elements"].items()
        },
        "alloys": {name: {**a["values"], "passed": a["passed"], "num_checks": a["num_checks"], "failed": a["failed"]}
                   for name, a in card.get("alloys", {}).items()},
    }
