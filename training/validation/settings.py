"""How finely the card computes each property: ``CardSettings()`` is the full card,
``CardSettings.quick()`` the coarse one for tests and ``validation.quick``."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any


@dataclass(frozen=True)
class CardSettings:
    """Every number the card's computations use.

    E-V: ``ev_points`` lattice constants over the element's range; Birch-Murnaghan fit on
    the points within ``eos_window`` (fraction of a) of the lowest one. Elastic constants:
    ± ``strain`` (engineering) on the conventional cell, internal coordinates relaxed to
    ``relax_fmax_ev_per_angstrom`` (at most ``relax_max_steps`` BFGS steps). Vacancy: the
    smallest cubic supercell with at least ``vacancy_min_atoms`` atoms, relaxed at fixed
    cell to ``vacancy_fmax_ev_per_angstrom``. Phonons: ``phonon_supercell`` repeats of the
    primitive cell, displacements of ``phonon_delta_angstrom``, ``phonon_path_points``
    q-points along ASE's standard path. NVE: velocity Verlet with ``md_timestep_fs``,
    ``md_steps`` steps on at least ``md_min_atoms`` atoms, velocities drawn (seed
    ``md_seed``) at twice ``md_temperature_k`` so that equipartition brings the crystal to
    about ``md_temperature_k``; distances checked every ``md_check_every`` steps against
    ``md_min_distance_angstrom``. Alloys: each ordered cell's volume from ``mixing_points``
    lattice constants within ± ``mixing_span`` of Vegard's law (``validation.mixing``). ``dtype`` is the calculator's for every part but the MD
    (``md_dtype``). ``is_quick`` marks the coarse card (set by ``quick()``).
    """

    ev_points: int = 101
    eos_window: float = 0.03
    strain: float = 0.005
    relax_fmax_ev_per_angstrom: float = 1e-4
    relax_max_steps: int = 200
    vacancy_min_atoms: int = 64
    vacancy_fmax_ev_per_angstrom: float = 1e-3
    vacancy_max_steps: int = 500
    vacancy_rattle_angstrom: float = 0.01
    phonon_supercell: int = 3
    phonon_delta_angstrom: float = 0.01
    phonon_path_points: int = 200
    md_temperature_k: float = 1000.0
    md_timestep_fs: float = 2.0
    md_steps: int = 2500
    md_min_atoms: int = 64
    md_check_every: int = 5
    md_min_distance_angstrom: float = 1.5
    md_seed: int = 0
    mixing_points: int = 9
    mixing_span: float = 0.05
    dtype: str = "float64"
    md_dtype: str = "float32"
    progress: bool = True
    is_quick: bool = False

    @classmethod
    def quick(cls, **changes: Any) -> "CardSettings":
        """Coarse grids, an 8-atom vacancy cell, 2x2x2 phonons and 50 MD steps: seconds on a
        small model, for tests and for the card at the end of a quick training run."""
        quick = cls(ev_points=26, relax_fmax_ev_per_angstrom=1e-3, relax_max_steps=100,
                    vacancy_min_atoms=8, vacancy_max_steps=100, phonon_supercell=2,
                    phonon_path_points=60, md_steps=50, is_quick=True)
        return replace(quick, **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
