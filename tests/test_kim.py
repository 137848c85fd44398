"""The KIM portable-model package: exported models through the KIM API (ASE's KIM
calculator, LAMMPS ``pair_style kim``), compared with ``EIPNNCalculator``.

The driver is compiled once per source hash into ``build/kim-driver`` (set
``EIPNN_KIM_DRIVER_CACHE`` to move it); models are installed into a throw-away KIM user
collection, so nothing touches the user's own ``~/.kim-api``.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import bulk
from ase.data import atomic_masses
from ase.io import write
from ase.md.verlet import VelocityVerlet
from ase.md.velocitydistribution import Stationary, thermalize_momenta

from eipnn_calc.calculator import EIPNNCalculator
from eipnn_calc.kim import exporter
from eipnn_calc.kim.collections import isolated_collection_environment
from eipnn_calc.kim.portable_model import install_portable_model, write_portable_model

kimpy = pytest.importorskip("kimpy")
from ase.calculators.kim import KIM  # noqa: E402  (needs kimpy)

REPO = Path(__file__).resolve().parents[1]
LAMMPS = shutil.which("lmp")
MPIRUN = shutil.which("mpirun")
# Open MPI refuses root (CI containers) and more ranks than it counts slots without these.
MPI_ENVIRONMENT = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
                   "OMPI_MCA_rmaps_base_oversubscribe": "1"}
RELATIVE_TOLERANCE = 1e-6
SI_LATTICE_ANGSTROM = 5.43


SMALL_MODELS = {  # kind -> hyper-parameters of a small 2-layer model
    "schnet": {"num_features": 16, "num_interactions": 2, "num_rbf": 16},
    "cgcnn": {"num_features": 16, "num_layers": 2, "num_rbf": 16},
    # 2 blocks: a receptive field of 3 cutoffs (gemnet.py), influence distance 15 Å
    "gemnet": {"num_blocks": 2, "atom_features": 16, "edge_features": 16, "triplet_features": 8,
               "rbf_features": 8, "cbf_features": 8, "bilinear_features": 8, "num_spherical": 4, "num_radial": 4,
               "num_atom_layers": 1},
}


def make_model_file(path: Path, species: list[str], seed: int = 0, kind: str = "schnet") -> Path:
    """A small random-init model (cutoff 5 Å, 2 layers: influence distance 10 Å)."""
    from eipnn_training.export import export_model
    from eipnn_training.models.build import ModelSpec, build_potential

    torch.manual_seed(seed)
    spec = ModelSpec(kind, species, 5.0, dict(SMALL_MODELS[kind]))
    potential = build_potential(spec)
    with torch.no_grad():
        potential.atom_ref[:] = torch.linspace(-5.4, -7.4, len(species)).unsqueeze(1)
        potential.scale[:] = 5.0  # forces of a few tenths of eV/Å: dynamics that do something
    export_model(potential, spec, path)
    return path


@pytest.fixture(scope="module")
def kim_environment(tmp_path_factory):
    """An isolated KIM user collection plus the cached driver; cwd there (kim.log)."""
    root = tmp_path_factory.mktemp("kim")
    cache = os.environ.get("EIPNN_KIM_DRIVER_CACHE", REPO / "build" / "kim-driver")
    threads = torch.get_num_threads()
    # One thread: on a shared 2-core machine OpenMP threads that spin-wait for each other
    # run 10x slower than one thread alone.
    torch.set_num_threads(1)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        for name, value in isolated_collection_environment(root, cache).items():
            if value is None:
                patch.delenv(name, raising=False)
            else:
                patch.setenv(name, value)
        patch.chdir(root)
        # The driver's mode lines are KIM "information" entries; EIP labelling earlier in the
        # session may have lowered the default to errors (eipnn_training.eip.catalogue).
        kimpy.log.Log.push_default_verbosity(kimpy.log_verbosity.information)
        yield root
        kimpy.log.Log.pop_default_verbosity()
    torch.set_num_threads(threads)


def install_model(root: Path, name: str, species: list[str], *options: str, kind: str = "schnet") -> Path:
    model = make_model_file(root / f"{name}.pt", species, kind=kind)
    assert exporter.main([str(model), name, "--output-dir", str(root / "packages"), "--install", *options]) == 0
    return model


@pytest.fixture(scope="module")
def si_model(kim_environment):
    return "eipnn_test_Si", install_model(kim_environment, "eipnn_test_Si", ["Si"])


@pytest.fixture(scope="module")
def sic_model(kim_environment):
    return "eipnn_test_SiC", install_model(kim_environment, "eipnn_test_SiC", ["Si", "C"])


def rattled(atoms: Atoms, seed: int, amplitude_angstrom: float = 0.1, strain: float = 0.01) -> Atoms:
    rng = np.random.default_rng(seed)
    atoms = atoms.copy()
    atoms.set_cell(atoms.cell.array @ (np.eye(3) + strain * rng.normal(size=(3, 3))), scale_atoms=True)
    atoms.positions += rng.normal(scale=amplitude_angstrom, size=atoms.positions.shape)
    return atoms


def evaluate(calculator, atoms: Atoms, properties: list[str]) -> dict[str, np.ndarray]:
    calculator.calculate(atoms.copy(), properties)
    return {name: calculator.results[name] for name in properties}


FOLDED = "the padding particles are periodic images of the contributing ones"
PADDED = "the model runs on the padding particles too"


def driver_modes(log: Path) -> list[str]:
    """The driver's mode messages in a kim.log, in order: each driver instance logs the
    mode of its first call and every change (kim_driver.cpp, BuildGraph)."""
    text = log.read_text() if log.exists() else ""
    return re.findall(r"eipnn KIM driver: ((?:the|no) [^\n]*)", text)


def assert_same_results(atoms: Atoms, model_name: str, model_path: Path) -> None:
    reference = atoms.copy()
    reference.calc = EIPNNCalculator(model_path)
    through_kim = atoms.copy()
    through_kim.calc = KIM(model_name)
    energy = reference.get_potential_energy()
    assert through_kim.get_potential_energy() == pytest.approx(energy, rel=RELATIVE_TOLERANCE)
    forces = reference.get_forces()
    assert np.abs(forces).max() > 1e-3  # a test of something
    np.testing.assert_allclose(
        through_kim.get_forces(), forces, rtol=0, atol=RELATIVE_TOLERANCE * np.abs(forces).max()
    )
    stress = reference.get_stress()
    np.testing.assert_allclose(
        through_kim.get_stress(), stress, rtol=0, atol=RELATIVE_TOLERANCE * np.abs(stress).max()
    )
    # ASE's padding is periodic images: the driver folded them (and ASE's stress, which it
    # takes from the padding forces, agreed above).
    assert driver_modes(Path("kim.log"))[-1].startswith(FOLDED)


@pytest.mark.parametrize(
    "atoms",
    [
        # 2 atoms: the 10 Å influence distance spans many periodic images.
        rattled(bulk("Si", "diamond", a=SI_LATTICE_ANGSTROM), seed=1),
        rattled(bulk("Si", "diamond", a=SI_LATTICE_ANGSTROM, cubic=True).repeat((2, 2, 2)), seed=2),
        rattled(bulk("Si", "diamond", a=SI_LATTICE_ANGSTROM).repeat((3, 2, 2)), seed=3, strain=0.03),
    ],
    ids=["primitive", "cubic-2x2x2", "triclinic-3x2x2"],
)
def test_ase_kim_equals_eipnn_calculator_for_si(si_model, atoms):
    name, path = si_model
    assert_same_results(atoms, name, path)


@pytest.fixture(scope="module")
def cgcnn_model(kim_environment):
    return "eipnn_test_Si_cgcnn", install_model(kim_environment, "eipnn_test_Si_cgcnn", ["Si"], kind="cgcnn")


@pytest.mark.parametrize("repeat", [1, 2], ids=["primitive", "cubic-2x2x2"])
def test_ase_kim_equals_eipnn_calculator_for_a_cgcnn(cgcnn_model, repeat):
    """CGCNN's tabulated export (issue 18) through the driver, pruned layers included."""
    name, path = cgcnn_model
    cell = bulk("Si", "diamond", a=SI_LATTICE_ANGSTROM, cubic=repeat > 1)
    assert_same_results(rattled(cell.repeat((repeat,) * 3), seed=7), name, path)


def test_ase_kim_equals_eipnn_calculator_for_a_gemnet(kim_environment):
    """GemNet's two-hop messages (issue 19) through the driver, folded onto the box atoms and
    over the explicit padding, whose depth (blocks + 1 cutoffs) makes the contributing atoms
    exact although every block runs over every edge."""
    path = install_model(kim_environment, "eipnn_test_Si_gemnet", ["Si"], kind="gemnet")
    install_model(kim_environment, "eipnn_test_Si_gemnet_padded", ["Si"], "--periodic-images", "evaluate",
                  kind="gemnet")
    atoms = rattled(bulk("Si", "diamond", a=SI_LATTICE_ANGSTROM), seed=8)
    assert_same_results(atoms, "eipnn_test_Si_gemnet", path)
    reference = evaluate(EIPNNCalculator(path), atoms, ["energy", "forces", "stress"])
    padded = evaluate(KIM("eipnn_test_Si_gemnet_padded"), atoms, ["energy", "forces", "stress"])
    assert driver_modes(Path("kim.log"))[-1].startswith(PADDED)
    assert padded["energy"] == pytest.approx(reference["energy"], rel=1e-10)
    np.testing.assert_allclose(padded["forces"], reference["forces"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(padded["stress"], reference["stress"], rtol=0, atol=1e-9)


def test_a_committee_runs_through_kim_as_its_mean(kim_environment):
    """A committee model file (issue 16) through the KIM driver: the members' mean, as the
    calculator gives it (the driver reads energy, forces and virial, never the spread)."""
    from eipnn_training.export import export_model
    from eipnn_training.models.build import ModelSpec, build_potential

    spec = ModelSpec("schnet", ["Si"], 5.0, {"num_features": 16, "num_interactions": 2, "num_rbf": 16})
    members = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        potential = build_potential(spec)
        with torch.no_grad():
            potential.atom_ref.fill_(-5.4)
            potential.scale.fill_(5.0)
        members.append(potential)
    path = kim_environment / "eipnn_test_committee.pt"
    export_model(members, spec, path)
    assert exporter.main([str(path), "eipnn_test_committee", "--output-dir", str(kim_environment / "packages"),
                          "--install"]) == 0
    atoms = rattled(bulk("Si", "diamond", a=SI_LATTICE_ANGSTROM, cubic=True), seed=4)
    assert_same_results(atoms, "eipnn_test_committee", path)
    single = atoms.copy()
    single.calc = EIPNNCalculator(make_model_file(kim_environment / "member0.pt", ["Si"], seed=0))
    committee = atoms.copy()
    committee.calc = EIPNNCalculator(path)
    assert committee.get_potential_energy() != pytest.approx(single.get_potential_energy(), rel=1e-6)


def test_ase_kim_equals_eipnn_calculator_for_two_species(sic_model):
    name, path = sic_model
    atoms = bulk("SiC", "zincblende", a=4.36, cubic=True).repeat((2, 2, 1))
    # Swap a few sites so both species see mixed neighbourhoods.
    symbols = atoms.get_chemical_symbols()
    for index in (0, 5, 11, 22):
        symbols[index] = "Si" if symbols[index] == "C" else "C"
    atoms.set_chemical_symbols(symbols)
    assert_same_results(rattled(atoms, seed=4), name, path)


def test_ase_kim_on_an_open_cluster(si_model):
    """No periodicity: the simulator supplies no padding; energies and forces still agree."""
    name, path = si_model
    atoms = rattled(bulk("Si", "diamond", a=SI_LATTICE_ANGSTROM, cubic=True), seed=5, strain=0)
    atoms.pbc = False
    reference = evaluate(EIPNNCalculator(path), atoms, ["energy", "forces"])
    kim = evaluate(KIM(name), atoms, ["energy", "forces"])
    assert kim["energy"] == pytest.approx(reference["energy"], rel=RELATIVE_TOLERANCE)
    np.testing.assert_allclose(kim["forces"], reference["forces"], atol=1e-9)


@pytest.fixture(scope="module")
def si_model_evaluated(kim_environment):
    """si_model's network (same seed) in a package with periodic_images = evaluate."""
    name = "eipnn_test_Si_evaluated"
    return name, install_model(kim_environment, name, ["Si"], "--periodic-images", "evaluate")


def test_periodic_images_evaluated_as_particles_give_the_folded_results(si_model, si_model_evaluated):
    atoms = rattled(bulk("Si", "diamond", a=SI_LATTICE_ANGSTROM).repeat((2, 2, 1)), seed=11, strain=0.02)
    folded = evaluate(KIM(si_model[0]), atoms, ["energy", "forces", "stress"])
    assert driver_modes(Path("kim.log"))[-1].startswith(FOLDED)
    padded = evaluate(KIM(si_model_evaluated[0]), atoms, ["energy", "forces", "stress"])
    assert driver_modes(Path("kim.log"))[-1] == PADDED + " (periodic_images = evaluate in the parameter file)"
    assert folded["energy"] == pytest.approx(padded["energy"], rel=1e-12)
    np.testing.assert_allclose(folded["forces"], padded["forces"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(folded["stress"], padded["stress"], rtol=0, atol=1e-10)


def test_padding_that_is_not_periodic_is_evaluated_as_given(si_model, si_model_evaluated, monkeypatch):
    """A padding particle missing between r_c and the influence distance (as a vacancy in
    another MPI domain's atoms would be): every padding particle present is still an exact
    image, but the folded graph would see an atom there. The driver must notice and run on
    the padding as given, which changes the energy."""
    from ase.calculators.kim.neighborlist import KimpyNeighborList

    atoms = rattled(bulk("Si", "diamond", a=SI_LATTICE_ANGSTROM, cubic=True), seed=12, strain=0)
    complete = evaluate(KIM(si_model[0]), atoms, ["energy", "forces"])
    cutoff, influence = 5.0, 10.0  # make_model_file: 2 layers of 5 Å
    create = KimpyNeighborList.create_paddings

    def with_a_padding_particle_missing(self, cell, pbc, coords, species):
        padding, padding_species, image_of = create(self, cell, pbc, coords, species)
        nearest = np.linalg.norm(padding[:, None, :] - np.asarray(coords)[None], axis=2).min(axis=1)
        gone = int(np.flatnonzero((nearest > cutoff + 0.5) & (nearest < influence - 3.0))[0])
        keep = np.arange(len(padding)) != gone
        return padding[keep], padding_species[keep], image_of[keep]

    monkeypatch.setattr(KimpyNeighborList, "create_paddings", with_a_padding_particle_missing)
    incomplete = evaluate(KIM(si_model[0]), atoms, ["energy", "forces"])
    modes = driver_modes(Path("kim.log"))
    assert modes[-1].startswith(PADDED + " (padding particle ") and "does not have the neighbours" in modes[-1]
    as_given = evaluate(KIM(si_model_evaluated[0]), atoms, ["energy", "forces"])
    assert incomplete["energy"] == pytest.approx(as_given["energy"], rel=1e-12)
    np.testing.assert_allclose(incomplete["forces"], as_given["forces"], rtol=0, atol=1e-10)
    # The missing atom is two edges from the cell, so it changes the energy a little (1e-5 eV
    # here), but far beyond the 1e-12 relative to which folding and evaluating agree.
    assert abs(incomplete["energy"] - complete["energy"]) > 1e-7


def test_kim_virial_and_particle_energies_through_kimpy(si_model):
    """partialVirial and partialParticleEnergy, which ASE's calculator never asks for: ask
    for them through kimpy on the particle arrays ASE's calculator has set up."""
    import kimpy

    name, path = si_model
    atoms = rattled(bulk("Si", "diamond", a=SI_LATTICE_ANGSTROM, cubic=True), seed=9, strain=0.03)
    calculator = KIM(name)
    atoms.calc = calculator
    atoms.get_potential_energy()  # builds the padding particles and neighbour lists
    num_particles = int(calculator._num_particles[0])
    virial = np.zeros(6)
    particle_energy = np.zeros(num_particles)
    raw_arguments = calculator._compute_args.compute_args
    raw_arguments.set_argument_pointer(kimpy.compute_argument_name.partialVirial, virial)
    raw_arguments.set_argument_pointer(kimpy.compute_argument_name.partialParticleEnergy, particle_energy)
    calculator._kim_model.compute(calculator._compute_args, False)

    reference = evaluate(EIPNNCalculator(path), atoms, ["energies", "stress"])
    # KIM's virial is sum_e r_e (x) dE/dr_e = volume * stress (Voigt: xx yy zz yz xz xy).
    expected_virial = reference["stress"] * atoms.get_volume()
    np.testing.assert_allclose(virial, expected_virial, rtol=0,
                               atol=RELATIVE_TOLERANCE * np.abs(expected_virial).max())
    contributing = len(atoms)
    np.testing.assert_allclose(particle_energy[:contributing], reference["energies"], rtol=RELATIVE_TOLERANCE)
    assert not particle_energy[contributing:].any()  # padding particles carry no energy
    assert num_particles > contributing


def test_species_the_model_lacks_is_refused(si_model):
    name, _ = si_model
    atoms = bulk("SiC", "zincblende", a=4.36)
    atoms.calc = KIM(name)
    with pytest.raises(RuntimeError, match="Species not supported by KIM model; .C."):
        atoms.get_potential_energy()


def create_in_subprocess(model_name: str) -> subprocess.CompletedProcess:
    """Create the KIM model in a fresh Python (a crash there cannot take pytest down)."""
    script = f"from ase.calculators.kim import KIM\nKIM({model_name!r})\n"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)


def test_a_bad_or_missing_model_file_gives_a_kim_error_that_says_why(kim_environment):
    model = make_model_file(kim_environment / "replaceable.pt", ["Si"])
    # --reference: the package points at the file instead of carrying a copy.
    options = ["--output-dir", str(kim_environment / "packages"), "--install", "--reference"]
    assert exporter.main([str(model), "eipnn_test_bad", *options]) == 0

    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(model))
    result = create_in_subprocess("eipnn_test_bad")
    assert result.returncode != 0 and "KimpyError" in result.stderr  # a Python error, no crash
    assert "is TorchScript but not an eipnn model" in result.stderr

    model.unlink()
    result = create_in_subprocess("eipnn_test_bad")
    assert result.returncode != 0 and "KimpyError" in result.stderr
    assert f"model file '{model}' does not exist" in result.stderr


# ---------------------------------------------------------------------------- LAMMPS

LAMMPS_SETUP = """\
kim init {model} metal
atom_style atomic
boundary p p p
read_data {data}
kim interactions {species}
mass * {mass}
"""
LAMMPS_NVE = """\
timestep {timestep_ps}
thermo_style custom step pe ke etotal
thermo_modify format float %.10f
thermo {every}
fix integrate all nve
run {steps}
"""
# One static evaluation: per-atom energies (partialParticleEnergy), forces, and the
# pressure tensor from the model's virial (partialVirial), with zero velocities.
LAMMPS_STATIC = """\
compute atom_energy all pe/atom
dump atoms all custom 1 atoms.dump id c_atom_energy fx fy fz
dump_modify atoms sort id format float %.12e
thermo_style custom step pe pxx pyy pzz pyz pxz pxy
thermo_modify format float %.12e
run 0
"""


def run_lammps(workdir: Path, model: str, atoms: Atoms, commands: str,
               species: str = "Si", launcher: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    data = workdir / "config.data"
    write(data, atoms, format="lammps-data", specorder=["Si"], velocities=True, units="metal")
    script = workdir / "in.kim"
    # ASE's mass for Si, so the two integrators move the same particles.
    setup = LAMMPS_SETUP.format(model=model, data=data, species=species, mass=atomic_masses[14])
    script.write_text(setup + commands)
    env = {**os.environ, **MPI_ENVIRONMENT} if launcher else None
    return subprocess.run([*launcher, LAMMPS, "-in", str(script), "-log", str(workdir / "log.lammps")],
                          cwd=workdir, capture_output=True, text=True, env=env)


def thermo_table(output: str) -> np.ndarray:
    rows = re.findall(r"^\s*(\d+)\s+(-?\d+\.\d+)\s+(-?\d+\.\d+)\s+(-?\d+\.\d+)\s*$", output, re.M)
    return np.array(rows, dtype=float)


def ase_nve_totals(atoms: Atoms, model_path: Path, steps: int, every: int, timestep_ps: float) -> np.ndarray:
    atoms = atoms.copy()
    atoms.calc = EIPNNCalculator(model_path)
    dynamics = VelocityVerlet(atoms, timestep=timestep_ps * 1000 * units.fs)
    totals = []
    dynamics.attach(lambda: totals.append(atoms.get_total_energy()), interval=every)
    dynamics.run(steps)
    return np.array(totals)


@pytest.fixture(scope="module")
def sw_model(kim_environment, sw_si_model):
    """The SchNet fitted to Stillinger-Weber (tests/conftest.py): physical dynamics."""
    name = "eipnn_test_sw_Si"
    folder = write_portable_model(sw_si_model, name, kim_environment / "packages")
    install_portable_model(folder, "user")
    return name, sw_si_model


@pytest.mark.skipif(LAMMPS is None, reason="LAMMPS (lmp) not installed")
def test_lammps_nve_512_atoms(sw_model, tmp_path):
    name, path = sw_model
    atoms = bulk("Si", "diamond", a=5.431, cubic=True).repeat((4, 4, 4))
    assert len(atoms) == 512
    thermalize_momenta(atoms, temperature_K=600, rng=np.random.default_rng(0))
    Stationary(atoms)
    steps, every, timestep_ps = 100, 10, 0.001
    nve = LAMMPS_NVE.format(timestep_ps=timestep_ps, steps=steps, every=every)
    result = run_lammps(tmp_path, name, atoms, nve)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = thermo_table(result.stdout)
    assert table[:, 0].tolist() == list(range(0, steps + 1, every))
    pe, ke, total = table[:, 1] / len(atoms), table[:, 2] / len(atoms), table[:, 3] / len(atoms)

    reference = atoms.copy()
    reference.calc = EIPNNCalculator(path)
    assert table[0, 1] == pytest.approx(reference.get_potential_energy(), rel=RELATIVE_TOLERANCE)
    # Conserved as in the ASE NVE test (tests/test_calculator.py): < 1e-3 eV/atom.
    assert np.abs(total - total[0]).max() < 1e-3
    # Sane dynamics: kinetic energy flows into the lattice (equipartition halves it).
    assert ke[-1] < 0.8 * ke[0] and pe[-1] > pe[0] + 0.1 * ke[0]
    # Same start, same integrator: ASE's first 10 steps land on the same total energy.
    ase_total = ase_nve_totals(atoms, path, every, every, timestep_ps) / len(atoms)
    np.testing.assert_allclose(ase_total, total[:2], rtol=0, atol=1e-6)


EV_PER_CUBIC_ANGSTROM_IN_BAR = 1.602176634e6


def assert_static_thermo_matches(output: str, reference: dict[str, np.ndarray]) -> None:
    """Step 0 of LAMMPS_STATIC's thermo output (pe in eV, pressure in bar) against the
    ASE energy and stress of the same configuration."""
    row = re.search(r"^\s*0((?:\s+-?\d\.\d+e[+-]\d+){7})\s*$", output, re.M)
    pe, *pressure_bar = map(float, row.group(1).split())
    assert pe == pytest.approx(reference["energy"], rel=RELATIVE_TOLERANCE)
    # LAMMPS: pxx pyy pzz pyz pxz pxy = -stress (Voigt order), in bar.
    expected_bar = -reference["stress"] * EV_PER_CUBIC_ANGSTROM_IN_BAR
    np.testing.assert_allclose(pressure_bar, expected_bar, rtol=0,
                               atol=RELATIVE_TOLERANCE * np.abs(expected_bar).max())


@pytest.mark.skipif(LAMMPS is None, reason="LAMMPS (lmp) not installed")
def test_lammps_static_energies_forces_and_pressure(si_model, tmp_path):
    name, path = si_model
    atoms = rattled(bulk("Si", "diamond", a=SI_LATTICE_ANGSTROM, cubic=True).repeat((2, 2, 2)),
                    seed=8, strain=0)
    atoms.set_cell(atoms.cell * 1.02, scale_atoms=True)
    result = run_lammps(tmp_path, name, atoms, LAMMPS_STATIC)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    reference = evaluate(EIPNNCalculator(path), atoms, ["energy", "energies", "forces", "stress"])

    dump = np.loadtxt(tmp_path / "atoms.dump", skiprows=9)
    energies, forces = dump[:, 1], dump[:, 2:5]
    np.testing.assert_allclose(energies, reference["energies"], rtol=RELATIVE_TOLERANCE)
    np.testing.assert_allclose(forces, reference["forces"], rtol=0,
                               atol=RELATIVE_TOLERANCE * np.abs(reference["forces"]).max())

    assert_static_thermo_matches(result.stdout, reference)


LAMMPS_NPT = """\
change_box all triclinic
velocity all create 600 4928459 dist gaussian
timestep 0.001
thermo_style custom step pe press vol
thermo_modify format float %.10e
thermo 5
fix integrate all npt temp 600 600 0.05 tri 0 0 0.2
run 40
"""


@pytest.mark.skipif(LAMMPS is None, reason="LAMMPS (lmp) not installed")
def test_lammps_npt_with_folded_images_follows_the_evaluated_padding(si_model, si_model_evaluated, tmp_path):
    """NPT moves and shears the box every step, and LAMMPS re-neighbours on the way: the
    folded driver follows the run with the padding evaluated as particles, to round-off."""
    atoms = rattled(bulk("Si", "diamond", a=SI_LATTICE_ANGSTROM, cubic=True).repeat((2, 2, 2)), seed=13, strain=0)
    tables = {}
    for name, _ in (si_model, si_model_evaluated):
        workdir = tmp_path / name
        workdir.mkdir()
        result = run_lammps(workdir, name, atoms, LAMMPS_NPT)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        rows = re.findall(r"^\s*(\d+)((?:\s+-?\d\.\d+e[+-]\d+){3})\s*$", result.stdout, re.M)
        tables[name] = np.array([[float(step), *map(float, rest.split())] for step, rest in rows])
        assert [int(step) for step in tables[name][:, 0]] == list(range(0, 41, 5))
        tables[name + " modes"] = driver_modes(workdir / "kim.log")
    folded, padded = tables[si_model[0]], tables[si_model_evaluated[0]]
    assert tables[si_model[0] + " modes"] == [FOLDED + ": the model runs on the contributing particles with image shifts"]
    assert tables[si_model_evaluated[0] + " modes"][0].startswith(PADDED)
    assert np.ptp(folded[:, 3]) > 1e-3 * folded[0, 3]  # the box did change
    np.testing.assert_allclose(folded[:, 1:], padded[:, 1:], rtol=1e-7)


@pytest.mark.skipif(LAMMPS is None or MPIRUN is None, reason="LAMMPS or mpirun not installed")
def test_lammps_domain_decomposition_gives_the_same_energy_and_pressure(si_model, tmp_path):
    """Two MPI ranks: each rank's 10.9 Å domain is thinner than its 10 Å + skin ghost shell,
    and atoms of the other rank arrive as padding particles."""
    name, path = si_model
    atoms = rattled(bulk("Si", "diamond", a=SI_LATTICE_ANGSTROM, cubic=True).repeat((4, 4, 4)),
                    seed=10, strain=0)
    result = run_lammps(tmp_path, name, atoms, LAMMPS_STATIC, launcher=(MPIRUN, "-np", "2"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"Loop time of .* on 2 procs", result.stdout)
    # Each rank's padding holds the other rank's atoms, which image none of its own.
    assert all(mode.startswith(PADDED) for mode in driver_modes(tmp_path / "kim.log"))
    reference = evaluate(EIPNNCalculator(path), atoms, ["energy", "stress"])
    assert_static_thermo_matches(result.stdout, reference)
