"""Every property of one element's card, computed with any ASE calculator: the E-V curve
first (it gives the model's own a0), then elastic constants, vacancy, phonons and NVE at
that a0. A part the calculator refuses (``EIPNNError``: say atoms too close in a relaxation
of a poor model) is recorded as failed with its message; the other parts still run."""
from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

from ase.calculators.calculator import Calculator

from eipnn_calc.errors import EIPNNError

from .elastic import cubic_elastic_constants
from .equation_of_state import EVCurve, EOSFit, energy_volume_curve, fit_birch_murnaghan, smoothness
from .nve import NVERun, nve_stability
from .phonons import PhononBands, phonon_bands
from .references import ElementEntry
from .settings import CardSettings
from .vacancy import vacancy_formation_energy

PARTS = ("ev", "elastic", "vacancy", "phonons", "nve")


@dataclass
class ElementProperties:
    """The card's numbers for one element (``values``, keyed as in references.yaml), the
    curves behind them, a note per part where something needs saying, and seconds per part."""

    symbol: str
    structure: str
    values: dict[str, Any] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    ev: Optional[EVCurve] = None
    eos: Optional[EOSFit] = None
    bands: Optional[PhononBands] = None
    nve: Optional[NVERun] = None
    details: dict[str, Any] = field(default_factory=dict)

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        except EIPNNError as error:
            self.notes[name] = f"failed: {error}"
        finally:
            self.seconds[name] = time.perf_counter() - started


def element_properties(calculator: Calculator, entry: ElementEntry, settings: CardSettings,
                       md_calculator: Optional[Calculator] = None,
                       parts: tuple[str, ...] = PARTS) -> ElementProperties:
    """Compute the card's properties of ``entry``'s element with ``calculator`` (and the MD
    with ``md_calculator``, default the same). ``parts`` picks a subset of ``PARTS``."""
    s, symbol, structure = settings, entry.symbol, entry.structure
    result = ElementProperties(symbol, structure)
    v = result.values
    with result.part("ev"):
        result.ev = energy_volume_curve(calculator, symbol, structure, entry.lattice_range_angstrom,
                                        s.ev_points, s.progress)
        result.eos = fit_birch_murnaghan(result.ev, s.eos_window)
        smooth = smoothness(result.ev)
        v.update(a0_angstrom=result.eos.a0_angstrom, bulk_modulus_gpa=result.eos.bulk_modulus_gpa,
                 e0_ev_per_atom=result.eos.e0_ev_per_atom, ev_local_minima=smooth.local_minima,
                 ev_wiggle_mev_per_atom=smooth.wiggle_mev_per_atom)
        if result.eos.note:
            result.notes["ev"] = result.eos.note
        if result.ev.note:
            result.notes["ev_range"] = result.ev.note
    a0 = v.get("a0_angstrom")
    if a0 is None:
        if result.ev is None:
            return result  # nothing to build the other cells on
        a0 = float(result.ev.lattice_angstrom[result.ev.energy_ev_per_atom.argmin()])
        result.notes["a0"] = f"no fitted a0: the other parts use the lowest grid point, a = {a0:.4f} Å"
    result.details["a0_used_angstrom"] = a0

    if "elastic" in parts:
        with result.part("elastic"):
            elastic = cubic_elastic_constants(calculator, symbol, structure, a0, s.strain,
                                              s.relax_fmax_ev_per_angstrom, s.relax_max_steps, s.progress)
            v.update(c11_gpa=elastic.c11_gpa, c12_gpa=elastic.c12_gpa, c44_gpa=elastic.c44_gpa,
                     c44_unrelaxed_gpa=elastic.c44_unrelaxed_gpa,
                     bulk_modulus_elastic_gpa=elastic.bulk_modulus_gpa)
            if not elastic.relaxations_converged:
                result.notes["elastic"] = (f"C44 relaxation not converged to {s.relax_fmax_ev_per_angstrom:g} "
                                           f"eV/Å in {s.relax_max_steps} steps")
    if "vacancy" in parts:
        with result.part("vacancy"):
            vacancy = vacancy_formation_energy(calculator, symbol, structure, a0, s.vacancy_min_atoms,
                                               s.vacancy_fmax_ev_per_angstrom, s.vacancy_max_steps,
                                               s.vacancy_rattle_angstrom, s.md_seed, s.progress)
            v.update(vacancy_formation_ev=vacancy.formation_ev,
                     vacancy_unrelaxed_formation_ev=vacancy.unrelaxed_formation_ev)
            result.details["vacancy"] = {"num_atoms": vacancy.num_atoms, "converged": vacancy.converged,
                                         "relax_steps": vacancy.relax_steps}
            if not vacancy.converged:
                result.notes["vacancy"] = (f"relaxation not converged to {s.vacancy_fmax_ev_per_angstrom:g} "
                                           f"eV/Å in {s.vacancy_max_steps} steps")
    if "phonons" in parts:
        with result.part("phonons"):
            result.bands = phonon_bands(calculator, symbol, structure, a0, s.phonon_supercell,
                                        s.phonon_delta_angstrom, s.phonon_path_points, s.progress)
            v.update(gamma_optical_thz=result.bands.gamma_optical_thz,
                     phonon_min_thz=result.bands.min_frequency_thz,
                     phonon_max_thz=result.bands.max_frequency_thz)
    if "nve" in parts:
        with result.part("nve"):
            result.nve = nve_stability(md_calculator or calculator, symbol, structure, a0,
                                       s.md_temperature_k, s.md_timestep_fs, s.md_steps, s.md_min_atoms,
                                       s.md_check_every, s.md_min_distance_angstrom, s.md_seed, s.progress)
            n = result.nve
            v.update(nve_stable=n.stable, nve_min_distance_angstrom=n.min_distance_angstrom,
                     nve_drift_mev_per_atom_per_ps=n.drift_mev_per_atom_per_ps,
                     nve_mean_temperature_k=n.mean_temperature_k)
            if n.note:
                result.notes["nve"] = n.note
    if "nve" in result.notes and "nve_stable" not in v:
        v["nve_stable"] = False  # the calculator refused an MD configuration
    return result
