"""The strategy results of a model on si-pbe (baseline, LA, MP, MP+LA over split seeds), and
their write-up: SOAPNet (issue 7), CGCNN (issue 18) and GemNet (issue 19), the paper's protocol
(energies only).

    .venv/bin/python benchmarks/run_model_experiments.py --model soapnet progress=false num_threads=1
    .venv/bin/python benchmarks/run_model_experiments.py --model cgcnn device=cuda   # overrides go to every run
    .venv/bin/python benchmarks/run_model_experiments.py --model cgcnn --report-only # rewrite docs/results.md
    .venv/bin/python benchmarks/run_model_experiments.py --model cgcnn --forces progress=false num_threads=1

For each split seed (seed = split seed): the four strategies with the model's example
configs, as run folders ``si_pbe_<model>_<tag>_s<seed>`` under ``--runs-dir`` (skipped when
finished, resumed when started; run_la_experiments.py / run_mp_experiments.py with
``--prefix si_pbe_<model>_`` and the model's configs make the same folders). MP and MP+LA
share one stored pretraining per seed. Then the model's section of docs/results.md (between
its markers) is rewritten from the run folders.

``--forces``: the product default instead, the same four configs trained on DFT energies and
forces (``train.force_weight=10``; MP pretrains on the EIP energies as above and fine-tunes
with forces), with each run's property card, in the section ``<model>-forces``. LA and MP+LA
there take the α that the energy-only search chose on the same seed (``la.alpha``) and wait
for that run: an 8-α search with forces is 8 force trainings, more than a session's CPU for
SchNet, CGCNN and GemNet (SOAPNet's stacked search, which now computes the forces of the DFT
rows alone, would take ~35 min on si-pbe; it keeps the shared protocol).

``--alpha-runs``: an α search (LA, MP+LA) as one run per α (``<name>_a<α>``, ``la.alpha``
fixed), each kept in benchmarks/finished when it finishes; once all have, the search's
result is the one with the best validation score (``experiment_runs.read_alpha_search``).
Each run is the search's member (tested), and one fits in a session where the whole
8-member search of CGCNN (~7 CPU hours here) does not.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from experiment_runs import (LA_DIAGNOSTICS_HEADER, CardColumn, add_common_arguments, alpha_run_name,  # benchmarks/
                             card_columns, card_header, card_mean, card_row, card_values, change, finished_mark,
                             change_on_shared_seeds, la_diagnostics_row, mean_std, not_run_row, publish, read,
                             read_alpha_search, run_once)

from eipnn_training.config import load_config
from eipnn_training.models.soap import power_spectrum_size

TAGS = {"baseline": "baseline", "LA": "la", "MP": "mp", "MP+LA": "mp_la"}  # label -> run-name tag
SEARCHED = ("LA", "MP+LA")  # the strategies with an alpha search
# The product default's runs (--forces): label -> run-name tag. The names are those the runs
# made by hand before this script had --forces (si_pbe_<model>_forces_s1, ..._mp_ftforces_s1).
FORCE_TAGS = {"baseline": "forces", "LA": "la_forces", "MP": "mp_ftforces", "MP+LA": "mp_la_forces"}
FORCE_WEIGHT = 10.0  # Å², the product default on si-pbe (train.force_weight null resolves to it)


@dataclass(frozen=True)
class Model:
    """A model's experiments: its name, its issue on si-pbe and its description ({cutoff} in Å
    and {soap_features} filled in for the data set)."""

    title: str
    issue: int
    description: str


MODELS = {
    "schnet": Model(
        "SchNet", 5,
        "SchNet at the paper's sizes (128 features, 5 interactions, 128 Gaussians at the DGL width × "
        "cosine envelope, cutoff {cutoff} Å; docs/radial_basis.md)"),
    "soapnet": Model(
        "SOAPNet", 7,
        "SOAP computed in torch (r_c {cutoff} Å, n_max 8, l_max 6, σ 1 Å, GTO basis, smooth cutoff; "
        "{soap_features} features) → 5 dense layers of 128 → atomwise head"),
    "cgcnn": Model(
        "CGCNN", 18,
        "CGCNN as a potential (gated convolutions, 128 features, 5 layers, 128 Gaussians × cosine "
        "envelope, all neighbours within {cutoff} Å, no normalisation, sum of atom energies; "
        "docs/cgcnn.md)"),
    "gemnet": Model(
        "GemNet", 19,
        "GemNet-T at the paper's sizes (atom/edge 128, triplet 64, 4 blocks, 7 spherical × 6 Bessel, "
        "cutoff {cutoff} Å, smooth triplet cutoff 4 Å, 2.29 M parameters; docs/gemnet.md)"),
}


@dataclass(frozen=True)
class DataSet:
    """A data set the experiments run on: the overrides that make the si-pbe example configs
    train on it, its elements (those of the property card), its EIPs as the text names them,
    and the paper's results on its counterpart (absolute configuration MAE in eV by model,
    or only the relative gains where the issues quote those)."""

    name: str
    overrides: tuple[str, ...]
    elements: tuple[str, ...]
    eips: str
    paper: str
    paper_mae: dict[str, dict[str, float]]
    paper_change: dict[str, dict[str, str]]
    issue: int | None = None  # None: each model's own issue


# The metals' sets (issue 21) at the paper's Al cutoff, 7 Å (METHOD.md; AgAu's is not given).
DATASETS = {
    "si-pbe": DataSet(
        "si-pbe", (), ("Si",), "the 8 Si EIPs", "KIM-Si",
        paper_mae={"schnet": {"baseline": 0.4805, "LA": 0.4015, "MP": 0.4034, "MP+LA": 0.3719},
                   "soapnet": {"baseline": 0.7706, "LA": 0.5595, "MP": 0.5717, "MP+LA": 0.5307}},
        paper_change={"cgcnn": {"LA": "-20 %", "MP": "-9 %", "MP+LA": "-20 %"},
                      "gemnet": {"LA": "-2 %", "MP": "-9 %", "MP+LA": "-9 %"}}),
    "al-pbe": DataSet(
        "al-pbe", ("data.path=data/al-pbe", "model.species=[Al]", "model.cutoff_angstrom=7.0", "la.eips=[al]",
                   "pretrain.eips=[al]"), ("Al",), "the 10 Al EIPs", "ANI-Al",
        paper_mae={"schnet": {"baseline": 0.1693, "LA": 0.0845, "MP": 0.1296, "MP+LA": 0.0816}},
        paper_change={}, issue=21),
    "agau-pbe": DataSet(
        "agau-pbe", ("data.path=data/agau-pbe", "model.species=[Ag,Au]", "model.cutoff_angstrom=7.0",
                     "la.eips=[agau]", "pretrain.eips=[agau]"), ("Ag", "Au"), "the 2 AgAu EIPs", "AgAu",
        paper_mae={"schnet": {"baseline": 0.7290, "LA": 0.6815, "MP": 0.3353, "MP+LA": 0.3496}},
        paper_change={}, issue=21),
}


@dataclass(frozen=True)
class Experiments:
    """One model's experiments on one data set: run names, sections, the paper's column."""

    model: str
    data: DataSet

    @property
    def prefix(self) -> str:
        """Run names: ``<prefix><tag>_s<seed>`` (si_pbe_cgcnn_la_s1)."""
        return f"{self.data.name.replace('-', '_')}_{self.model}_"

    @property
    def section(self) -> str:
        """The results section's marker name (si-pbe's keep the model's name alone)."""
        return self.model if self.data.name == "si-pbe" else f"{self.data.name}-{self.model}"

    @property
    def title(self) -> str:
        return MODELS[self.model].title

    @property
    def heading(self) -> str:
        issue = self.data.issue or MODELS[self.model].issue
        return f"## {self.title} on {self.data.name} (issue {issue})"

    @property
    def description(self) -> str:
        """The model's description with this data set's cutoff and SOAP size."""
        cutoff = next((float(o.split("=", 1)[1]) for o in self.data.overrides
                       if o.startswith("model.cutoff_angstrom=")), 5.0)
        return MODELS[self.model].description.format(
            cutoff=f"{cutoff:g}", soap_features=power_spectrum_size(len(self.data.elements), 8, 6))

    @property
    def command(self) -> str:
        """The runner's arguments that make this section."""
        data = "" if self.data.name == "si-pbe" else f" --dataset {self.data.name}"
        return f"benchmarks/run_model_experiments.py --model {self.model}{data}"

    @property
    def columns(self) -> list[CardColumn]:
        return card_columns(self.data.elements)

    def paper_cell(self, label: str) -> str:
        mae = self.data.paper_mae.get(self.model)
        if mae is not None:
            return f"{mae[label]:.4f}" + (f" ({change([mae[label]], [mae['baseline']])})" if label != "baseline" else "")
        return self.data.paper_change.get(self.model, {}).get(label, "")

    def overrides_text(self) -> str:
        """How the si-pbe configs are made to train on the data set, for the section's text."""
        if not self.data.overrides:
            return ""
        return (f" On {self.data.name}: the same configs with `{' '.join(self.data.overrides)}`, "
                f"the DFT splits of its protocol (docs/dft.md) and {self.data.eips} on its pool.")


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def finished_runs(found: dict[str, dict[int, dict | None]]) -> list[dict]:
    """The results of a section's finished runs (strategy -> seed -> results or None)."""
    return [r for runs in found.values() for r in runs.values() if r]


def split_sizes(ex: Experiments, done: list[dict]) -> str:
    """The sentence with the train / val / test sizes of the runs' split seeds, for a data
    set made here (still growing); '' for si-pbe or no run."""
    sizes = sorted({(r["num_train"], r["num_val"], r["num_test"]) for r in done if "num_train" in r})
    if not ex.data.overrides or not sizes:
        return ""
    return f" Train / val / test configurations by seed: {'; '.join(' / '.join(map(str, z)) for z in sizes)}."


def report(ex: Experiments, runs_dir: Path, seeds: list[int]) -> str:
    """The markdown of the energy-only section, from whatever run folders exist."""
    begin, end = markers(ex.section)
    found = {label: {s: read_result(ex, label, s, runs_dir) for s in seeds} for label in TAGS}
    paper = ex.data.paper
    paper_column = (f"paper ({paper}) config MAE" if ex.model in ex.data.paper_mae
                    else f"paper ({paper}) vs baseline")
    done_all = finished_runs(found)
    lines = [begin, finished_mark(len(done_all)), ex.heading, "",
             f"Generated by `{ex.command}`. {ex.description}; "
             "otherwise the METHOD.md settings of the SchNet runs (baseline: "
             f"`examples/si_pbe_{ex.model}_baseline.yaml`; LA: classifier from scratch, α searched on "
             f"validation over the 8-value grid; MP: pretraining on {ex.data.eips}' energies of the "
             "unlabeled pool, then fine-tuning; MP+LA: LA from the same stored pretraining)."
             f"{ex.overrides_text()} Test split; "
             "configuration MAE in eV, atom MAE in eV/atom; mean (sample std) over the split seeds; "
             f"float32 training, one torch thread, CPU.{split_sizes(ex, done_all)}", "",
             "| strategy | " + " | ".join(f"seed {s} config / atom MAE" for s in seeds)
             + f" | config MAE, mean (std) | vs baseline | atom MAE, mean (std) | {paper_column} |",
             "| --- | " + " | ".join("---" for _ in seeds) + " | ---: | ---: | ---: | ---: |"]
    for label, runs in found.items():
        cells = [f"{r['test_config_mae_ev']:.4f} / {r['test_atom_mae_ev_per_atom']:.4f}" if r else "not run"
                 for r in runs.values()]
        done = [r for r in runs.values() if r]
        config = [r["test_config_mae_ev"] for r in done]
        versus = change_on_shared_seeds(runs, found["baseline"]) if label != "baseline" else ""
        lines.append(f"| {label} | {' | '.join(cells)} | {mean_std(config)} | {versus} "
                     f"| {mean_std([r['test_atom_mae_ev_per_atom'] for r in done])} | {ex.paper_cell(label)} |")
    for label in SEARCHED:
        rows = [la_diagnostics_row(s, r["la"]) for s, r in found[label].items() if r]
        if rows:
            lines += ["", f"{label}: the diagnostics per seed (classes on train, classifier, selection "
                      "from the pool, outliers among the selected by how far their EIP is from DFT in "
                      "eV/atom, graded after training; best validation configuration MAE by α):", "",
                      *LA_DIAGNOSTICS_HEADER, *rows]
    return "\n".join(lines + [end]) + "\n"


def config_path(model: str, label: str) -> str:
    return f"examples/si_pbe_{model}_{TAGS[label]}.yaml"


def alpha_grid(model: str, label: str) -> list[float]:
    """The alpha grid of the model's config of ``label`` (an alpha-search strategy)."""
    return [float(alpha) for alpha in load_config(config_path(model, label)).la.alpha_grid]


def read_result(ex: Experiments, label: str, seed: int, runs_dir: Path) -> dict | None:
    """A finished energy-only run's results; an alpha search also from its alphas' own runs."""
    run = f"{ex.prefix}{TAGS[label]}_s{seed}"
    if label in SEARCHED:
        return read_alpha_search(runs_dir, run, alpha_grid(ex.model, label))
    return read(runs_dir, run)


def force_overrides(ex: Experiments, label: str, seed: int, runs_dir: Path) -> list[str] | None:
    """Overrides that make the energy-only config of ``label`` the product default on
    ``seed``; None while an LA run waits for the α of its energy-only search."""
    overrides = [f"train.force_weight={FORCE_WEIGHT}", f"data.split_seed={seed}", f"seed={seed}"]
    if label not in SEARCHED:
        return overrides
    searched = read_result(ex, label, seed, runs_dir)
    if not searched:
        return None
    return overrides + [f"la.alpha={searched['la']['alpha']}"]


def report_forces(ex: Experiments, runs_dir: Path, seeds: list[int]) -> str:
    """The markdown of the product-default section, from whatever runs exist."""
    begin, end = markers(f"{ex.section}-forces")
    columns = ex.columns
    found = {label: {s: read(runs_dir, f"{ex.prefix}{tag}_s{s}") for s in seeds}
             for label, tag in FORCE_TAGS.items()}
    references = ("PBE references and tolerances as in the issue-22 table above" if ex.data.name == "si-pbe" else
                  "PBE references of `training/validation/references.yaml`, computed here at the labels' "
                  "settings (docs/validation.md)")
    done_all = finished_runs(found)
    lines = [begin, finished_mark(len(done_all)),
             f"### {ex.title} with forces: the product default and its property cards", "",
             f"Generated by `{ex.command} --forces`: the four configs "
             f"of the section above trained on DFT energies and forces (`train.force_weight={FORCE_WEIGHT:g}` Å²; "
             f"MP pretrains on {ex.data.eips}' energies as above, then fine-tunes with forces; LA and MP+LA use the "
             "α the energy-only search chose on the same seed). Test split; the property card by "
             f"`eipnn-validate` at the end of each run ({references}); one CPU thread per run. 'vs baseline': "
             "change of the mean test energy and force MAE against the force-trained baseline on the seeds "
             f"both have.{split_sizes(ex, done_all)}", "",
             *card_header(columns)]
    summary = []
    for label, runs in found.items():
        values = {s: card_values(r, columns) for s, r in runs.items() if r}
        for s in seeds:
            alpha = f", α {runs[s]['la']['alpha']:g}" if s in values and "la" in runs[s] else ""
            lines.append(card_row(f"{label}, seed {s}{alpha}", values[s], columns) if s in values
                         else not_run_row(f"{label}, seed {s}", columns))
        if len(values) > 1:
            lines.append(card_row(f"**{label}, mean of {len(values)} seeds**", card_mean(list(values.values())),
                                  columns, bold=True))
        if label != "baseline" and values:
            base = {s: r for s, r in found["baseline"].items() if r}
            energy = change_on_shared_seeds(runs, found["baseline"])
            shared = [s for s in values if s in base]
            force = change([runs[s]["test_force_mae_ev_per_angstrom"] for s in shared],
                           [base[s]["test_force_mae_ev_per_angstrom"] for s in shared])
            if shared:
                summary.append(f"- {label} vs baseline (seeds {', '.join(map(str, shared))}): "
                               f"energy MAE {energy}, force MAE {force}.")
    return "\n".join(lines + ([""] + summary if summary else []) + [end]) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_arguments(p)
    p.add_argument("--model", choices=sorted(MODELS), required=True)
    p.add_argument("--dataset", choices=list(DATASETS), default="si-pbe",
                   help="the data set (al-pbe, agau-pbe: the si-pbe configs with its overrides; section "
                   "<dataset>-<model>)")
    p.add_argument("--forces", action="store_true",
                   help="the product default: energies and forces, with property cards (section <model>-forces)")
    p.add_argument("--alpha-runs", action="store_true",
                   help="train an alpha search (LA, MP+LA) as one run per alpha (<name>_a<alpha>, each "
                   "finishing in a session; kept in benchmarks/finished) instead of one run")
    args = p.parse_args(argv)
    if args.model == "schnet" and args.dataset == "si-pbe":
        p.error("SchNet's si-pbe results are made by run_la_experiments.py and run_mp_experiments.py")
    ex = Experiments(args.model, DATASETS[args.dataset])
    runs_dir = Path(args.runs_dir)
    tags = FORCE_TAGS if args.forces else TAGS
    if not args.report_only:
        for seed in args.seeds:
            for label, tag in tags.items():
                config = config_path(args.model, label)
                name = f"{ex.prefix}{tag}_s{seed}"
                if args.forces:
                    overrides = force_overrides(ex, label, seed, runs_dir)
                    if overrides is None:
                        print(f"== {name}: waits for the energy-only α search ({ex.prefix}{TAGS[label]}_s{seed})")
                        continue
                else:
                    overrides = [f"data.split_seed={seed}", f"seed={seed}"]
                overrides = args.overrides + list(ex.data.overrides) + overrides
                if args.alpha_runs and label in SEARCHED and not args.forces and read(runs_dir, name) is None:
                    for alpha in alpha_grid(args.model, label):
                        run_once(config, alpha_run_name(name, alpha), overrides + [f"la.alpha={alpha}"], runs_dir)
                    continue
                run_once(config, name, overrides, runs_dir)
    if args.forces:
        return publish(report_forces(ex, runs_dir, args.seeds), args.results, *markers(f"{ex.section}-forces"))
    return publish(report(ex, runs_dir, args.seeds), args.results, *markers(ex.section))


if __name__ == "__main__":
    sys.exit(main())
