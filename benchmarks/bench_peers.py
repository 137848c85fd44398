"""eipnn against SchNetPack 2: the same paper-size SchNet, the same weights, MD side by side.

A SchNet of 128 features, 5 interactions, 128 Gaussians (SchNetPack's width: sigma = their
spacing, eipnn's ``rbf_width: spacing``) on 5 Å with the cosine envelope is built in eipnn,
its weights copied into SchNetPack's ``SchNet`` + ``Atomwise`` + ``Forces``, and both run
velocity-Verlet MD at 300 K on diamond Si through ASE: eipnn's ``EIPNNCalculator`` (the
tabulated export, and with ``--exact`` the filter networks too), SchNetPack's
``SpkCalculator`` with ``SkinNeighborList(MatScipyNeighborList)``, both with a 1 Å skin,
steps interleaved so that the machine's load falls on both alike. First the predictions
are compared in float64; a KIM Stillinger-Weber step is the classical floor.

SchNetPack stays out of eipnn's dependencies: ``bash scripts/setup_peers.sh`` makes
``.venv-peers`` (eipnn's venv plus SchNetPack 2.1.1 with the workarounds torch 2.13 needs),
then

    .venv-peers/bin/python benchmarks/bench_peers.py [--sizes 64 512 4096] [--threads 1 2]

prints the table and writes it to docs/benchmarks.md (section "peers").
"""
from __future__ import annotations

import argparse
import copy
import os
import tempfile
import time
import typing
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # SchNetPack's torch.load of a whole model

import numpy as np
import torch
import torch.utils.data.dataloader as _dataloader
from ase import units
from ase.build import bulk
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet

from eipnn_calc import EIPNNCalculator
from eipnn_training.export import export_model
from eipnn_training.models.build import ModelSpec, build_potential

from eipnn_training.markdown_section import write_section

if not hasattr(_dataloader, "T_co"):  # SchNetPack 2.1.1 imports a TypeVar torch 2.13 no longer has
    _dataloader.T_co = typing.TypeVar("T_co", covariant=True)
try:
    import schnetpack as spk
except ImportError as err:  # a benchmark extra: say how to get it
    raise SystemExit(f"SchNetPack is not importable ({err}): run `bash scripts/setup_peers.sh` and use "
                     ".venv-peers/bin/python") from None

SIZES = {64: 2, 512: 4, 4096: 8}  # atoms -> repeats of the 8-atom cubic cell
SW_SI = "SW_StillingerWeber_1985_Si__MO_405512056662_005"
CUTOFF = 5.0
SKIN = 1.0
HYPERPARAMETERS = {"num_features": 128, "num_interactions": 5, "num_rbf": 128, "rbf_width": "spacing"}
SILICON = 14


def eipnn_potential(seed: int = 0):
    torch.manual_seed(seed)
    spec = ModelSpec("schnet", ["Si"], CUTOFF, dict(HYPERPARAMETERS), 128)
    potential = build_potential(spec).double()
    with torch.no_grad():  # forces of a few eV/Å on a rattled crystal, as a trained model's
        potential.scale.fill_(10.0)
    return spec, potential


def schnetpack_copy(potential) -> torch.nn.Module:
    """SchNetPack's SchNet with ``potential``'s weights (module by module: their Dense
    layers are nn.Linear, their shifted softplus ours; atom_ref 0 and scale folded into the
    last head layer)."""
    features = HYPERPARAMETERS["num_features"]
    representation = spk.representation.SchNet(
        n_atom_basis=features, n_interactions=HYPERPARAMETERS["num_interactions"],
        radial_basis=spk.nn.GaussianRBF(n_rbf=HYPERPARAMETERS["num_rbf"], cutoff=CUTOFF),
        cutoff_fn=spk.nn.CosineCutoff(CUTOFF))
    model = spk.model.NeuralNetworkPotential(
        representation=representation, input_modules=[spk.atomistic.PairwiseDistances()],
        output_modules=[spk.atomistic.Atomwise(n_in=features, n_hidden=features, output_key="energy",
                                                activation=spk.nn.shifted_softplus),  # its default: SiLU
                        spk.atomistic.Forces(energy_key="energy", force_key="forces")]).double()
    ours = potential.representation
    with torch.no_grad():
        # The same Gaussians to the last bit: their width from our coefficient (-1/(2 w^2)),
        # which eipnn computes in float64 and SchNetPack from float32 centres.
        representation.radial_basis.widths.copy_(torch.sqrt(-0.5 / ours.rbf.coefficient))
        representation.radial_basis.offsets.copy_(ours.rbf.centers)
        representation.embedding.weight[SILICON] = ours.embedding.weight[0]
        for theirs, mine in zip(representation.interactions, ours.interactions):
            theirs.in2f.weight.copy_(mine.in2f.weight)
            for their_layer, my_layer in ((theirs.filter_network[0], mine.filter_net[0]),
                                          (theirs.filter_network[1], mine.filter_net[2]),
                                          (theirs.f2out[0], mine.f2out[0]), (theirs.f2out[1], mine.f2out[2])):
                their_layer.weight.copy_(my_layer.weight)
                their_layer.bias.copy_(my_layer.bias)
        head, my_head = model.output_modules[0].outnet, potential.head.net
        scale, offset = float(potential.scale[0]), float(potential.atom_ref[0, 0])
        head[0].weight.copy_(my_head[0].weight)
        head[0].bias.copy_(my_head[0].bias)
        head[1].weight.copy_(scale * my_head[2].weight)
        head[1].bias.copy_(scale * my_head[2].bias + offset)
    return model


def md_cell(repeat: int, seed: int = 0):
    atoms = bulk("Si", "diamond", 5.431, cubic=True).repeat(repeat)
    atoms.rattle(0.02, seed=seed)
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(seed))
    return atoms


def spk_calculator(model_file: Path, dtype: str):
    neighbors = spk.transform.SkinNeighborList(spk.transform.MatScipyNeighborList(cutoff=CUTOFF), cutoff_skin=SKIN)
    return spk.interfaces.SpkCalculator(str(model_file), neighbor_list=neighbors, energy_unit="eV",
                                        position_unit="Angstrom", dtype=getattr(torch, dtype))


def agreement(files: dict[str, Path], spk_file: Path) -> dict[str, tuple[float, float]]:
    """(eV/atom, eV/Å): largest energy and force differences from SchNetPack, float64,
    over a rattled 64-atom cell and a strained 8-atom one."""
    cells = [md_cell(2, seed=1), bulk("Si", "diamond", 5.2, cubic=True)]
    cells[0].rattle(0.1, seed=2)
    reference = []
    for atoms in cells:
        atoms.calc = spk_calculator(spk_file, "float64")
        reference.append((atoms.get_potential_energy() / len(atoms), atoms.get_forces()))
    out = {}
    for name, path in files.items():
        energy, force = 0.0, 0.0
        for atoms, (e_ref, f_ref) in zip(cells, reference):
            atoms.calc = EIPNNCalculator(path, skin=SKIN)
            energy = max(energy, abs(atoms.get_potential_energy() / len(atoms) - e_ref))
            force = max(force, float(np.abs(atoms.get_forces() - f_ref).max()))
        out[name] = (energy, force)
    return out


def interleaved_md(calculators: dict[str, object], repeat: int, steps: int) -> dict[str, float]:
    """ms per velocity-Verlet step of each calculator, one step of each in turn."""
    runs = {}
    for name, calc in calculators.items():
        atoms = md_cell(repeat)
        atoms.calc = calc
        runs[name] = VelocityVerlet(atoms, timestep=1.0 * units.fs)
        runs[name].run(2)  # the first neighbour list and the TorchScript profiling runs
    totals = dict.fromkeys(calculators, 0.0)
    for _ in range(steps):
        for name, dyn in runs.items():
            start = time.perf_counter()
            dyn.run(1)
            totals[name] += time.perf_counter() - start
    return {name: 1e3 * total / steps for name, total in totals.items()}


def first_call_ratio(path: Path, repeat: int, dtype: str) -> float:
    """A fresh calculator's first force call over its fifth (steady) one."""
    atoms = md_cell(repeat)
    atoms.calc = EIPNNCalculator(path, dtype=dtype, skin=SKIN)
    times = []
    for _ in range(5):
        atoms.positions += 1e-3
        start = time.perf_counter()
        atoms.get_forces()
        times.append(time.perf_counter() - start)
    return times[0] / times[-1]


def kim_calculator():
    try:
        from ase.calculators.kim import KIM
    except ImportError:
        return None
    return KIM(SW_SI)


def table(rows: list[dict], agree: dict[str, tuple[float, float]], exact: bool) -> str:
    lines = [
        f"torch {torch.__version__}, SchNetPack {spk.__version__ if hasattr(spk, '__version__') else '2.1.1'}; "
        "SchNet 128 features, 5 interactions, 128 Gaussians (SchNetPack's width), 5 Å, "
        f"identical weights; skin {SKIN} Å in both; velocity Verlet 300 K, steps interleaved.",
        "",
        "Predictions in float64, largest difference from SchNetPack over a rattled 64-atom and a "
        "strained 8-atom cell: " + "; ".join(
            f"eipnn {name}: {e:.1e} eV/atom, {f:.1e} eV/Å" for name, (e, f) in agree.items()) + ".",
        "",
        "| atoms | dtype | threads | eipnn ms/step | " + ("eipnn exact ms/step | " if exact else "")
        + "SchNetPack ms/step | SchNetPack / eipnn | KIM SW ms/step | eipnn first call / steady |",
        "|---:|---|---:|---:|" + ("---:|" if exact else "") + "---:|---:|---:|---:|",
    ]
    for r in rows:
        kim = f"{r['kim']:.2f}" if r.get("kim") is not None else "n/a"
        exact_cell = f"{r['exact']:.1f} | " if exact else ""
        lines.append(f"| {r['atoms']} | {r['dtype']} | {r['threads']} | {r['eipnn']:.1f} | {exact_cell}"
                     f"{r['schnetpack']:.1f} | {r['schnetpack'] / r['eipnn']:.2f} | {kim} | {r['first']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--dtypes", nargs="*", default=["float32", "float64"], choices=["float32", "float64"])
    parser.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--steps", type=int, default=10, help="steps per run at 512 atoms and fewer (fewer above)")
    parser.add_argument("--exact", action="store_true", help="also time eipnn's exact (untabulated) export")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        spec, potential = eipnn_potential()
        files = {"tabulated": Path(tmp) / "tabulated.pt", "exact": Path(tmp) / "exact.pt"}
        export_model(potential, spec, files["tabulated"])
        export_model(potential, spec, files["exact"], exact=True)
        spk_file = Path(tmp) / "schnetpack.pt"
        torch.save(schnetpack_copy(potential), spk_file)
        agree = agreement(files, spk_file)
        print("agreement", agree, flush=True)
        for threads in args.threads:
            torch.set_num_threads(threads)
            for n_atoms in args.sizes:
                steps = max(3, args.steps * 512 // max(n_atoms, 512))
                for dtype in args.dtypes:
                    calculators = {"eipnn": EIPNNCalculator(files["tabulated"], dtype=dtype, skin=SKIN),
                                   "schnetpack": spk_calculator(spk_file, dtype)}
                    if args.exact:  # its estimate for 4,096 atoms with the skin is 2x its ~9 GB peak
                        calculators["exact"] = EIPNNCalculator(files["exact"], dtype=dtype, skin=SKIN,
                                                               memory_limit_gb=20)
                    kim = kim_calculator()
                    if kim is not None:
                        calculators["kim"] = kim
                    row = {"atoms": n_atoms, "dtype": dtype, "threads": threads,
                           **interleaved_md(calculators, SIZES[n_atoms], steps),
                           "first": first_call_ratio(files["tabulated"], SIZES[n_atoms], dtype)}
                    rows.append(row)
                    print(row, flush=True)
    text = table(rows, agree, args.exact)
    print(text)
    if not args.no_write:
        begin, end = "<!-- peers:start -->", "<!-- peers:end -->"
        path = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
        write_section(path, f"{begin}\n## eipnn and SchNetPack, MD step\n\n{text}\n{end}", begin, end, "# Benchmarks")


if __name__ == "__main__":
    main()
