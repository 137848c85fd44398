"""How close the tabulated export is to the network it tabulates, on the si-pbe test split.

For a trained SchNet run folder (default: the product SchNet, examples/si_pbe_schnet_forces.yaml,
split seed 1, trained with ``eipnn-train examples/si_pbe_schnet_forces.yaml``), the run is
exported twice, tabulated (the default) and ``--exact``, and every test configuration is
evaluated through ``EIPNNCalculator`` with both files in float64 and float32. Reported
against the float64 exact model: the largest and mean energy (eV/atom) and force-component
(eV/Å) differences, issue 17's bounds (float64: 1e-6 eV/atom and 1e-5 eV/Å; float32: no
further than the float32 exact model), the grid, the file sizes and the time per force call.

    python benchmarks/bench_tabulated.py [--run runs/si_pbe_schnet_forces_s1]

Prints the table and writes it to docs/benchmarks.md (section "tabulated").
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from eipnn_calc import EIPNNCalculator, read_metadata
from eipnn_training.cli.export import export_run
from eipnn_training.config import load_config
from eipnn_training.data.si_pbe import load_si_pbe, protocol_split

from eipnn_training.markdown_section import write_section

ROOT = Path(__file__).resolve().parents[1]


def test_configurations(run: Path) -> list:
    config = load_config(run / "config.yaml")
    configurations = load_si_pbe()
    return [configurations[i] for i in protocol_split(len(configurations), config.data.split_seed)["test"]]


def predictions(path: Path, dtype: str, configurations: list) -> tuple[list[float], list[np.ndarray], float]:
    """Energies per atom, forces, and the mean seconds per call, of every configuration."""
    calc = EIPNNCalculator(path, dtype=dtype, skin=0.0)
    energies, forces, seconds = [], [], 0.0
    for atoms in configurations:
        atoms = atoms.copy()
        atoms.calc = calc
        start = time.perf_counter()
        forces.append(atoms.get_forces())
        seconds += time.perf_counter() - start
        energies.append(atoms.get_potential_energy() / len(atoms))
    return energies, forces, seconds / len(configurations)


def differences(reference, other) -> dict[str, float]:
    energy = np.abs(np.array(other[0]) - np.array(reference[0]))
    force = np.concatenate([np.abs(f - g).ravel() for f, g in zip(other[1], reference[1])])
    return {"energy_max": energy.max(), "energy_mean": energy.mean(), "force_max": force.max(), "force_mean": force.mean()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "si_pbe_schnet_forces_s1")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    if not (args.run / "checkpoints").is_dir():
        raise SystemExit(f"no trained run at {args.run}: train one first, e.g. "
                         "`eipnn-train examples/si_pbe_schnet_forces.yaml`")
    torch.set_num_threads(1)
    configurations = test_configurations(args.run)
    with tempfile.TemporaryDirectory() as tmp:
        files = {"tabulated": export_run(args.run, Path(tmp) / "tabulated.pt"),
                 "exact": export_run(args.run, Path(tmp) / "exact.pt", exact=True)}
        table = read_metadata(files["tabulated"]).model["filter_table"]
        sizes = {name: path.stat().st_size / 1e6 for name, path in files.items()}
        runs = {(name, dtype): predictions(path, dtype, configurations)
                for name, path in files.items() for dtype in ("float64", "float32")}
    reference = runs[("exact", "float64")]
    lines = [
        f"Run `{args.run.name}` ({len(configurations)} test configurations of si-pbe, "
        f"{sum(len(a) for a in configurations):,} atoms); filter table: {table['knots']} knots "
        f"{table['spacing_angstrom']:.4g} Å apart; files {sizes['tabulated']:.1f} MB tabulated, "
        f"{sizes['exact']:.1f} MB exact (float64); one thread.",
        "",
        "| model | dtype | max ΔE (eV/atom) | mean ΔE (eV/atom) | max ΔF (eV/Å) | mean ΔF (eV/Å) | ms per call |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for (name, dtype), result in runs.items():
        d = differences(reference, result) if (name, dtype) != ("exact", "float64") else None
        cells = ("reference", "", "", "") if d is None else (
            f"{d['energy_max']:.1e}", f"{d['energy_mean']:.1e}", f"{d['force_max']:.1e}", f"{d['force_mean']:.1e}")
        lines.append(f"| {name} | {dtype} | " + " | ".join(cells) + f" | {1e3 * result[2]:.1f} |")
    tab64 = differences(reference, runs[("tabulated", "float64")])
    tab32, exact32 = differences(reference, runs[("tabulated", "float32")]), differences(reference, runs[("exact", "float32")])
    lines += ["", f"float64 bound (1e-6 eV/atom, 1e-5 eV/Å): "
              f"{'met' if tab64['energy_max'] <= 1e-6 and tab64['force_max'] <= 1e-5 else 'NOT met'}; "
              f"float32 tabulated mean differences / float32 exact's: energy "
              f"{tab32['energy_mean'] / exact32['energy_mean']:.2f}, forces {tab32['force_mean'] / exact32['force_mean']:.2f}."]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        begin, end = "<!-- tabulated:start -->", "<!-- tabulated:end -->"
        write_section(ROOT / "docs" / "benchmarks.md",
                      f"{begin}\n## Tabulated filters against the exact network\n\n{text}\n{end}", begin, end,
                      "# Benchmarks")


if __name__ == "__main__":
    main()
