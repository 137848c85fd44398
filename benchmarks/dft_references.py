"""PBE references of the property card for the elements of this project's own DFT sets (Al,
Ag, Au), computed with the settings of their labels (GPAW, ``dft.PRODUCTION``) through the
very card the models get (``calculator_card``: E-V and Birch-Murnaghan, finite-strain
elastic constants, the relaxed vacancy), so a model is compared with the DFT it was
trained on. Prints the card of each element and writes the table into docs/validation.md;
its numbers go into ``training/validation/references.yaml`` (source ``eipnn-gpaw-pbe``).

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/dft_references.py Al Ag Au
    # or one process per element, then the table from their saved results:
    .venv/bin/python benchmarks/dft_references.py Ag & .venv/bin/python benchmarks/dft_references.py Au
    .venv/bin/python benchmarks/dft_references.py Al Ag Au

What differs from a model's card, because each point is a DFT calculation: 15 points on
the E-V scan instead of 101, a 32-atom vacancy cell instead of >= 64 (finite size: the
models' 108-atom cell relaxes a little further), positions relaxed to 0.01 eV/Å without
a rattle (the symmetric relaxation; GPAW keeps the point group and its k-point savings),
no phonons and no MD. One element is one process-minutes to an hour on one core
(docs/validation.md gives the times).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from eipnn_training.markdown_section import publish_section

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- dft-references:begin -->", "<!-- dft-references:end -->"
PARTS = ("ev", "elastic", "vacancy")
COLUMNS = (("a0 (Å)", "a0_angstrom", "{:.4f}"), ("B (GPa)", "bulk_modulus_gpa", "{:.1f}"),
           ("C11", "c11_gpa", "{:.1f}"), ("C12", "c12_gpa", "{:.1f}"), ("C44", "c44_gpa", "{:.1f}"),
           ("vacancy (eV)", "vacancy_formation_ev", "{:.3f}"),
           ("E–V wiggle (meV/atom)", "ev_wiggle_mev_per_atom", "{:.2f}"))
ATOMS_PER_CELL = {"fcc": 4, "bcc": 2, "diamond": 8}


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("elements", nargs="+", help="chemical symbols with an entry in references.yaml")
    parser.add_argument("--workdir", default="runs/dft_references")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=PARTS,
                        help="card parts (E-V always; the vacancy is most of the time)")
    parser.add_argument("--doc", default=str(HERE.parent / "docs" / "validation.md"))
    return parser.parse_args()


def card_settings():
    from eipnn_training.validation.settings import CardSettings

    return CardSettings(ev_points=15, relax_fmax_ev_per_angstrom=0.01, relax_max_steps=30,
                        vacancy_min_atoms=32, vacancy_fmax_ev_per_angstrom=0.01, vacancy_max_steps=60,
                        vacancy_rattle_angstrom=0.0)


def reference_card(symbol: str, workdir: Path, parts: tuple[str, ...] = PARTS) -> tuple[dict, float, dict]:
    """(card values, seconds, k-point grids by cell size) of ``symbol`` with GPAW; read back
    from ``workdir/<symbol>/`` when an earlier run finished it (one element can take an
    hour: run them as separate processes, then once more with all of them for the table)."""
    finished = workdir / symbol / "reference.json"
    if finished.exists():
        saved = json.loads(finished.read_text())
        return saved["values"], saved["seconds"], {int(k): v for k, v in saved["grids"].items()}
    from ase.data import atomic_numbers, reference_states

    from eipnn_training.dft.crystal_calculator import CrystalGPAW
    from eipnn_training.dft.settings import PRODUCTION
    from eipnn_training.validation.card import calculator_card, select_elements
    from eipnn_training.validation.references import load_references

    references = load_references()
    entries, _ = select_elements([symbol], symbol, references)
    structure = entries[0].structure
    calculator = CrystalGPAW(PRODUCTION, symbol, structure, ATOMS_PER_CELL[structure],
                             float(reference_states[atomic_numbers[symbol]]["a"]))
    started = time.perf_counter()
    card = calculator_card(calculator, entries, workdir / symbol, card_settings(), references,
                           title=f"GPAW {PRODUCTION.settings_id}", parts=parts)
    seconds = time.perf_counter() - started
    values = card["elements"][symbol]["values"]
    print(symbol, json.dumps({key: values.get(key) for _, key, _ in COLUMNS}),
          f"{seconds:.0f} s, {calculator.calls} calculations", flush=True)
    grids = {cells: list(grid) for cells, grid in calculator.grids.items()}
    finished.write_text(json.dumps({"values": values, "seconds": seconds, "grids": grids}, indent=2) + "\n")
    return values, seconds, grids


def main() -> int:
    args = _arguments()
    from eipnn_training.dft.settings import PRODUCTION

    rows = []
    for symbol in args.elements:
        values, seconds, grids = reference_card(symbol, Path(args.workdir), tuple(args.parts))
        cells = ", ".join(f"{n} cell{'s' if n > 1 else ''}: {'×'.join(map(str, g))}" for n, g in sorted(grids.items()))
        rows.append(f"| {symbol} | " + " | ".join("—" if values.get(k) is None else f.format(values[k])
                                                 for _, k, f in COLUMNS) + f" | {cells} | {seconds / 60:.0f} |")
    lines = [BEGIN, "", "## PBE references of Al, Ag and Au, computed here", "",
             "Generated by `benchmarks/dft_references.py`: GPAW at the settings of the al-pbe / agau-pbe labels "
             f"(`{PRODUCTION.settings_id}`: PBE, plane waves 350 eV, 4.5 k-points per Å⁻¹, Fermi-Dirac 0.1 eV; "
             "docs/dft.md) as the calculator of the card itself, fcc, E-V on 15 points, elastic constants "
             "from ± 0.5 % strains of the conventional cell, the vacancy in a 32-atom cell relaxed at fixed "
             "volume to 0.01 eV/Å (one k-point grid per cell size, taken at ASE's reference lattice constant). "
             "One thread; minutes of wall time on the shared machine.", "",
             "| element | " + " | ".join(c for c, _, _ in COLUMNS) + " | k-point grids (conventional cells) | minutes |",
             "|" + " --- |" * (len(COLUMNS) + 3), *rows, "", END]
    publish_section(Path(args.doc), "\n".join(lines), BEGIN, END, "# The property card")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
