"""The card's figures: E-V curve with its fits, phonon bands, NVE energy and temperature."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .equation_of_state import EOSFit, EVCurve  # noqa: E402
from .nve import NVERun  # noqa: E402
from .phonons import PhononBands  # noqa: E402


def ev_plot(curve: EVCurve, eos: EOSFit | None, reference_a0: float | None, path: Path, title: str) -> None:
    a, e = curve.lattice_angstrom, curve.energy_ev_per_atom
    x = (a - a.mean()) / (a.max() - a.min())
    quartic = np.polyval(np.polyfit(x, e, 4), x)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 6), sharex=True, height_ratios=[3, 1])
    top.plot(a, e, "o", ms=3, label="model")
    top.plot(a, quartic, "-", lw=1, label="quartic fit (smoothness)")
    if eos is not None and eos.a0_angstrom is not None:
        top.axvline(eos.a0_angstrom, color="C2", lw=1, label=f"a0 = {eos.a0_angstrom:.4f} Å (Birch–Murnaghan)")
    if reference_a0 is not None:
        top.axvline(reference_a0, color="k", ls="--", lw=1, label=f"reference a0 = {reference_a0:.4f} Å")
    top.set_ylabel("energy (eV/atom)")
    top.set_title(title)
    top.legend(fontsize=8)
    bottom.plot(a, 1000 * (e - quartic), ".-", ms=3)
    bottom.set_ylabel("E − quartic\n(meV/atom)")
    bottom.set_xlabel("lattice constant a (Å)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def phonon_plot(bands: PhononBands, reference_gamma_thz: float | None, path: Path, title: str) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(bands.x, bands.frequencies_thz, color="C0", lw=1)
    for x in bands.special_x:
        ax.axvline(x, color="0.7", lw=0.5)
    ax.axhline(0, color="0.5", lw=0.5)
    if reference_gamma_thz is not None:
        ax.plot([bands.x[0]], [reference_gamma_thz], "k*", ms=8,
                label=f"reference Γ optical {reference_gamma_thz:g} THz")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xticks(bands.special_x, [r"$\Gamma$" if s == "G" else s for s in bands.special_labels])
    ax.set_xlim(bands.x[0], bands.x[-1])
    ax.set_ylabel("frequency (THz)")
    ax.set_title(f"{title} ({bands.supercell}³ primitive supercell)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def nve_plot(run: NVERun, path: Path, title: str) -> None:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    top.plot(run.time_ps, 1000 * (run.total_energy_ev_per_atom - run.total_energy_ev_per_atom[0]), lw=1)
    top.set_ylabel("E_total − E_total(0)\n(meV/atom)")
    top.set_title(f"{title}: drift {run.drift_mev_per_atom_per_ps:.3f} meV/atom/ps, "
                  f"{'stable' if run.stable else 'UNSTABLE'}", fontsize=10)
    bottom.plot(run.time_ps, run.temperature_k, lw=1)
    bottom.set_ylabel("temperature (K)")
    bottom.set_xlabel("time (ps)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def mixing_plot(fractions: np.ndarray, mixing_mev_per_atom: np.ndarray, references: dict[float, float],
                path: Path, title: str) -> None:
    """Mixing energy against composition, with the reference points where there are some."""
    fig, axis = plt.subplots(figsize=(5, 3.5))
    axis.plot(fractions, mixing_mev_per_atom, "o-", label="model")
    if references:
        xs = sorted(references)
        axis.plot(xs, [references[x] for x in xs], "k^", label="reference (PBE)")
    axis.axhline(0.0, color="grey", lw=0.8)
    axis.set(xlabel="x (fraction of the second element)", ylabel="mixing energy (meV/atom)", title=title)
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
