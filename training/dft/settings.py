"""What a DFT label was computed with, and the store key that follows from it.

A :class:`DFTSettings` holds every choice that changes a GPAW energy: functional, plane-wave
cut-off, k-point density, smearing, PAW setups, SCF tolerances; its ``settings_id`` (with
the GPAW and PAW-setup versions) is the key the label store files the labels under, so a
changed setting never reuses a stale label. The k-point grid of each configuration follows
from its cell and the density (points per Å⁻¹, ASE's ``kptdensity`` convention), so a
4-atom cell and a 32-atom cell of the same crystal get the same sampling.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from .errors import DFTSettingsError, GPAWNotInstalled

SMEARINGS = ("fermi-dirac", "marzari-vanderbilt", "methfessel-paxton", "gaussian")


def _default_setups() -> tuple[tuple[str, str], ...]:
    # Ag: the 11-electron (4d10 5s1) setup, not the 17-electron default: ~2x cheaper with
    # the same semicore treatment as Au's default 11-electron setup.
    return (("Ag", "11"),)


@dataclass(frozen=True)
class DFTSettings:
    """GPAW plane-wave settings. Energies in eV, lengths in Å.

    ``kpoint_density_per_inverse_angstrom``: Monkhorst–Pack points per Å⁻¹ of reciprocal
    length (ASE's ``kptdensity``: n_i = ceil(2π · density / d_i), d_i the spacing of the
    lattice planes), Γ-centred; 1 along non-periodic directions. ``setups``: (element,
    setup name) pairs that differ from GPAW's default ("paw"). ``scf_energy_ev_per_electron``
    and ``scf_density`` are GPAW's convergence criteria; ``maxiter`` its SCF iteration cap.
    """

    xc: str = "PBE"
    ecut_ev: float = 350.0
    kpoint_density_per_inverse_angstrom: float = 4.5
    smearing: str = "fermi-dirac"
    smearing_width_ev: float = 0.1
    setups: tuple[tuple[str, str], ...] = field(default_factory=_default_setups)
    scf_energy_ev_per_electron: float = 1e-5
    scf_density: float = 1e-5
    maxiter: int = 300

    def __post_init__(self):
        if not self.ecut_ev > 0:
            raise DFTSettingsError(f"ecut_ev must be positive, not {self.ecut_ev}")
        if not self.kpoint_density_per_inverse_angstrom > 0:
            raise DFTSettingsError(
                "kpoint_density_per_inverse_angstrom must be positive, not "
                f"{self.kpoint_density_per_inverse_angstrom}"
            )
        if self.smearing not in SMEARINGS:
            raise DFTSettingsError(
                f"unknown smearing '{self.smearing}': use one of {', '.join(SMEARINGS)}"
            )
        if not self.smearing_width_ev > 0:
            raise DFTSettingsError(
                f"smearing_width_ev must be positive, not {self.smearing_width_ev}"
            )

    def replace(self, **changes) -> "DFTSettings":
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict:
        """The settings, the code and setup versions, as plain JSON types."""
        payload = dataclasses.asdict(self)
        payload["setups"] = {element: name for element, name in self.setups}
        payload.update(code_versions())
        return payload

    @property
    def settings_id(self) -> str:
        """The store key: ``gpaw-<version>:<xc>:pw<ecut>:k<density>:<hash>``. The hash covers
        every field and the code versions; the readable part is for people."""
        blob = json.dumps(self.as_dict(), sort_keys=True).encode()
        digest = hashlib.sha256(blob).hexdigest()[:12]
        versions = code_versions()
        return (
            f"dft:gpaw-{versions['gpaw']}:{self.xc}:pw{self.ecut_ev:g}:"
            f"k{self.kpoint_density_per_inverse_angstrom:g}:{digest}"
        )

    def kpoint_grid(self, atoms) -> tuple[int, int, int]:
        """The Γ-centred Monkhorst–Pack grid of this configuration."""
        from ase.calculators.calculator import kptdensity2monkhorstpack

        grid = kptdensity2monkhorstpack(
            atoms, kptdensity=self.kpoint_density_per_inverse_angstrom, even=False
        )
        return tuple(int(n) if periodic else 1 for n, periodic in zip(grid, atoms.pbc))

    def gpaw_parameters(self, atoms, mixing: str = "default") -> dict:
        """Keyword arguments of ``gpaw.GPAW`` for this configuration. ``mixing`` "safe" is
        the retry after a failed SCF: smaller steps, longer history, more iterations."""
        from gpaw import PW

        parameters = dict(
            mode=PW(self.ecut_ev),
            xc=self.xc,
            kpts={"size": self.kpoint_grid(atoms), "gamma": True},
            occupations={"name": self.smearing, "width": self.smearing_width_ev},
            setups={"default": "paw", **dict(self.setups)},
            convergence={"energy": self.scf_energy_ev_per_electron, "density": self.scf_density},
            maxiter=self.maxiter,
            txt=None,
        )
        if mixing == "safe":
            parameters["mixer"] = {"beta": 0.02, "nmaxold": 8, "weight": 100.0}
            parameters["maxiter"] = 2 * self.maxiter
        elif mixing != "default":
            raise DFTSettingsError(f"unknown mixing '{mixing}': use 'default' or 'safe'")
        return parameters


def code_versions() -> dict:
    """GPAW's and the PAW datasets' versions, read from package metadata (no GPAW import:
    importing GPAW initialises MPI, which a process that forks workers must not do)."""
    from importlib import metadata

    versions = {}
    for package in ("gpaw", "gpaw-data"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "none"
    return versions


def require_gpaw() -> None:
    """Raise :class:`GPAWNotInstalled` with the install command when GPAW is missing."""
    if code_versions()["gpaw"] == "none":
        raise GPAWNotInstalled(
            "GPAW is not installed in this interpreter: run `EIPNN_DFT=1 bash "
            "scripts/setup_env.sh` (Debian packages libxc-dev libopenmpi-dev "
            "libopenblas-dev libfftw3-dev, then pip install -e '.[dft]')"
        )


# The production settings of data/al-pbe and data/agau-pbe (docs/dft.md, "Convergence").
PRODUCTION = DFTSettings()


def cost_estimate(atoms, settings: DFTSettings) -> float:
    """A relative cost of one calculation (k-points × atoms²): orders the work smallest
    first and weights the progress bar, so its time left is not fooled by the order."""
    return float(np.prod(settings.kpoint_grid(atoms))) * len(atoms) ** 2
