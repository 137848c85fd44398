"""SOAP + forces per atom on 512-atom Si: our torch SOAP vs dscribe with its derivatives.

Paper settings (r_cut 5 Å, n_max 8, l_max 6, sigma 1 Å, 252 features). Timed paths:

* dscribe ``create`` (descriptor only) and ``derivatives`` (descriptor + d p_i / d r_j, the
  paper's path to forces; analytical for an open cluster, numerical for a periodic cell,
  which is all dscribe offers there). dscribe's Jacobian is [centres, atoms, 3, 252], so it
  is timed for a subset of centres and reported per centre.
* ours: the descriptor, and the descriptor plus the backward pass that forces need (the
  vector-Jacobian product with dE/dp), with dscribe's neighbour radius (8.72 Å, exact
  dscribe features) and with the smooth 5 Å cutoff (what an MD model uses); and a whole
  SOAPNet (energy + forces + virial) through its scripted model-file entry point.

Usage: python benchmarks/bench_soap.py [--device cuda] [--threads 2] [--repeats 5]
"""
from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
import torch
from ase import Atoms
from ase.build import bulk

from eipnn_calc.neighbors import build_edges
from eipnn_training.models.build import ModelSpec, build_potential
from eipnn_training.models.soap import SOAP, dscribe_cutoff_angstrom

R_CUT, N_MAX, L_MAX, SIGMA = 5.0, 8, 6, 1.0


def si_512(periodic: bool) -> Atoms:
    atoms = bulk("Si", "diamond", 5.431, cubic=True).repeat(4)
    atoms.rattle(0.05, seed=0)
    atoms.pbc = periodic
    return atoms


def best_seconds(
    work: Callable[[], object], repeats: int, synchronize: Callable[[], None]
) -> float:
    work()  # warm-up (allocations, TorchScript profiling runs)
    synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def dscribe_rows(repeats: int, centres: int) -> list[tuple[str, float]]:
    from dscribe.descriptors import SOAP as DscribeSOAP

    rows = []
    for periodic in (False, True):
        atoms = si_512(periodic)
        soap = DscribeSOAP(
            species=["Si"], r_cut=R_CUT, n_max=N_MAX, l_max=L_MAX, sigma=SIGMA, periodic=periodic
        )
        label = "periodic" if periodic else "open"
        create = best_seconds(lambda: soap.create(atoms), repeats, lambda: None)
        rows.append((f"dscribe create, {label}, 512 centres", create / len(atoms)))
        method = "numerical" if periodic else "analytical"
        subset = list(range(centres if not periodic else max(1, centres // 8)))
        derivatives = best_seconds(
            lambda: soap.derivatives(atoms, centers=subset, method=method),
            max(1, repeats // 2),
            lambda: None,
        )
        name = f"dscribe create+derivatives ({method}), {label}, {len(subset)} centres"
        rows.append((name, derivatives / len(subset)))
    return rows


def torch_rows(device: torch.device, dtype: torch.dtype, repeats: int) -> list[tuple[str, float]]:
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    atoms = si_512(True)
    species = torch.zeros(len(atoms), dtype=torch.int64, device=device)
    rows = []
    name = str(dtype).replace("torch.", "")
    for label, cutoff, smooth in (
        ("dscribe radius 8.72 Å", dscribe_cutoff_angstrom(R_CUT, SIGMA), False),
        ("smooth 5 Å", R_CUT, True),
    ):
        soap = torch.jit.script(
            SOAP(1, R_CUT, N_MAX, L_MAX, SIGMA, cutoff_angstrom=cutoff, smooth_cutoff=smooth)
            .to(device, dtype)
        )
        edge_index, shifts = build_edges(atoms, cutoff)
        edge_index = torch.tensor(edge_index, device=device)
        shifts = torch.tensor(shifts, device=device, dtype=dtype)
        positions = torch.tensor(atoms.positions, device=device, dtype=dtype)
        weights = torch.randn(soap.num_features, device=device, dtype=dtype)

        def descriptor() -> torch.Tensor:
            vectors = positions[edge_index[1]] - positions[edge_index[0]] + shifts
            return soap(species, edge_index, vectors, vectors.norm(dim=1))

        def with_forces() -> torch.Tensor:
            moving = positions.detach().requires_grad_(True)
            vectors = moving[edge_index[1]] - moving[edge_index[0]] + shifts
            features = soap(species, edge_index, vectors, vectors.norm(dim=1))
            return torch.autograd.grad((features @ weights).sum(), moving)[0]

        with torch.no_grad():
            seconds = best_seconds(descriptor, repeats, synchronize)
            rows.append((f"ours SOAP, {label}, {name}", seconds / len(atoms)))
        seconds = best_seconds(with_forces, repeats, synchronize)
        rows.append((f"ours SOAP+forces, {label}, {name}", seconds / len(atoms)))
    seconds = soapnet_seconds(atoms, device, dtype, repeats)
    rows.append((f"ours SOAPNet energy+forces+virial, smooth 5 Å, {name}", seconds / len(atoms)))
    return rows


def soapnet_seconds(atoms: Atoms, device: torch.device, dtype: torch.dtype, repeats: int) -> float:
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    potential = build_potential(ModelSpec("soapnet", ["Si"], R_CUT)).to(device, dtype)
    potential = torch.jit.script(potential)
    edge_index, shifts = build_edges(atoms, R_CUT)
    arguments = (
        torch.zeros(len(atoms), dtype=torch.int64, device=device),
        torch.tensor(edge_index, device=device),
        torch.tensor(shifts, device=device, dtype=dtype),
        torch.ones(len(atoms), dtype=torch.bool, device=device),
    )
    positions = torch.tensor(atoms.positions, device=device, dtype=dtype)
    return best_seconds(lambda: potential(positions.clone(), *arguments), repeats, synchronize)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads on the CPU")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--centres", type=int, default=32, help="dscribe derivative centres (Jacobian memory)"
    )
    parser.add_argument("--skip-dscribe", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = [] if args.skip_dscribe else dscribe_rows(args.repeats, args.centres)
    for dtype in (torch.float64, torch.float32):
        rows += torch_rows(device, dtype, args.repeats)
    print(f"512-atom Si, r_cut {R_CUT} Å, n_max {N_MAX}, l_max {L_MAX}, sigma {SIGMA} Å; "
          f"device {device}, {args.threads} threads; best of {args.repeats}")
    for label, seconds in rows:
        print(f"{label:<70s} {seconds * 1e6:10.1f} µs/atom")


if __name__ == "__main__":
    main()
