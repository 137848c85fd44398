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
for that run: an 8-α search with forces is 8 force trainings, more than a session's CPU.

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

from experiment_runs import (CARD, LA_DIAGNOSTICS_HEADER, add_common_arguments, alpha_run_name,  # benchmarks/
                             card_mean, card_row, card_values, change, change_on_shared_seeds, la_diagnostics_row,
                             mean_std, publish, read, read_alpha_search, run_once)

from eipnn_training.config import load_config

TAGS = {"baseline": "baseline", "LA": "la", "MP": "mp", "MP+LA": "mp_la"}  # label -> run-name tag
SEARCHED = ("LA", "MP+LA")  # the strategies with an alpha search
# The product default's runs (--forces): label -> run-name tag. The names are those the runs
# made by hand before this script had --forces (si_pbe_<model>_forces_s1, ..._mp_ftforces_s1).
FORCE_TAGS = {"baseline": "forces", "LA": "la_forces", "MP": "mp_ftforces", "MP+LA": "mp_la_forces"}
FORCE_WEIGHT = 10.0  # Å², the product default on si-pbe (train.force_weight null resolves to it)


@dataclass(frozen=True)
class Model:
    """A model's experiments: its heading and description, and the paper's KIM-Si numbers
    (absolute configuration MAE in eV, or only the relative gains where the issue quotes those)."""

    heading: str
    description: str
    paper_mae: dict[str, float] | None = None
    paper_change: dict[str, str] | None = None


MODELS = {
    "soapnet": Model(
        "## SOAPNet on si-pbe (issue 7)",
        "SOAP computed in torch (r_c 5 Å, n_max 8, l_max 6, σ 1 Å, GTO basis, smooth cutoff; 252 "
        "features) → 5 dense layers of 128 → atomwise head",
        paper_mae={"baseline": 0.7706, "LA": 0.5595, "MP": 0.5717, "MP+LA": 0.5307},
    ),
    "cgcnn": Model(
        "## CGCNN on si-pbe (issue 18)",
        "CGCNN as a potential (gated convolutions, 128 features, 5 layers, 128 Gaussians × cosine "
        "envelope, all neighbours within 5 Å, no normalisation, sum of atom energies; "
        "docs/cgcnn.md)",
        paper_change={"LA": "-20 %", "MP": "-9 %", "MP+LA": "-20 %"},
    ),
    "gemnet": Model(
        "## GemNet on si-pbe (issue 19)",
        "GemNet-T at the paper's sizes (atom/edge 128, triplet 64, 4 blocks, 7 spherical × 6 Bessel, "
        "cutoff 5 Å, smooth triplet cutoff 4 Å, 2.29 M parameters; docs/gemnet.md)",
        paper_change={"LA": "-2 %", "MP": "-9 %", "MP+LA": "-9 %"},
    ),
}


def _paper_cell(model: Model, label: str) -> str:
    if model.paper_mae is not None:
        mae = model.paper_mae
        return f"{mae[label]:.4f}" + (f" ({change([mae[label]], [mae['baseline']])})" if label != "baseline" else "")
    return (model.paper_change or {}).get(label, "")


def _title(name: str) -> str:
    """The model's name as its section heading writes it ("CGCNN")."""
    return MODELS[name].heading.lstrip("# ").split(" on ")[0]


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def report(name: str, runs_dir: Path, seeds: list[int]) -> str:
    """The markdown of the model's section, from whatever run folders exist."""
    model, prefix = MODELS[name], f"si_pbe_{name}_"
    begin, end = markers(name)
    found = {label: {s: read_result(name, label, f"{prefix}{tag}_s{s}", runs_dir) for s in seeds}
             for label, tag in TAGS.items()}
    paper_column = "paper (KIM-Si) config MAE" if model.paper_mae else "paper (KIM-Si) vs baseline"
    lines = [begin, model.heading, "",
             f"Generated by `benchmarks/run_model_experiments.py --model {name}`. {model.description}; "
             "otherwise the METHOD.md settings of the SchNet runs (baseline: "
             f"`examples/si_pbe_{name}_baseline.yaml`; LA: classifier from scratch, α searched on "
             "validation over the 8-value grid; MP: pretraining on the 8 Si EIPs' energies of the "
             "unlabeled pool, then fine-tuning; MP+LA: LA from the same stored pretraining). Test split; "
             "configuration MAE in eV, atom MAE in eV/atom; mean (sample std) over the split seeds; "
             "float32 training, one torch thread, CPU.", "",
             "| strategy | " + " | ".join(f"seed {s} config / atom MAE" for s in seeds)
             + f" | config MAE, mean (std) | vs baseline | atom MAE, mean (std) | {paper_column} |",
             "| --- | " + " | ".join("---" for _ in seeds) + " | ---: | ---: | ---: | ---: |"]
    for label, runs in found.items():
        cells = [f"{r['test_config_mae_ev']:.4f} / {r['test_atom_mae_ev_per_atom']:.4f}" if r else "not run"
                 for r in runs.values()]
        done = [r for r in runs.values() if r]
        config = [r["test_config_mae_ev"] for r in done]
        versus = change_on_shared_seeds(runs, found["baseline"]) if label != "baseline" else ""
        paper = _paper_cell(model, label)
        lines.append(f"| {label} | {' | '.join(cells)} | {mean_std(config)} | {versus} "
                     f"| {mean_std([r['test_atom_mae_ev_per_atom'] for r in done])} | {paper} |")
    for label in ("LA", "MP+LA"):
        rows = [la_diagnostics_row(s, r["la"]) for s, r in found[label].items() if r]
        if rows:
            lines += ["", f"{label}: the diagnostics per seed (classes on train, classifier, selection "
                      "from the pool, outliers among the selected by how far their EIP is from DFT in "
                      "eV/atom, graded after training; best validation configuration MAE by α):", "",
                      *LA_DIAGNOSTICS_HEADER, *rows]
    return "\n".join(lines + [end]) + "\n"


def config_path(name: str, label: str) -> str:
    return f"examples/si_pbe_{name}_{TAGS[label]}.yaml"


def alpha_grid(name: str, label: str) -> list[float]:
    """The alpha grid of the model's config of ``label`` (an alpha-search strategy)."""
    return [float(alpha) for alpha in load_config(config_path(name, label)).la.alpha_grid]


def read_result(name: str, label: str, run: str, runs_dir: Path) -> dict | None:
    """A finished run's results; an alpha search also from its alphas' own runs."""
    if label in SEARCHED:
        return read_alpha_search(runs_dir, run, alpha_grid(name, label))
    return read(runs_dir, run)


def force_overrides(name: str, label: str, seed: int, runs_dir: Path) -> list[str] | None:
    """Overrides that make the energy-only config of ``label`` the product default on
    ``seed``; None while an LA run waits for the α of its energy-only search."""
    overrides = [f"train.force_weight={FORCE_WEIGHT}", f"data.split_seed={seed}", f"seed={seed}"]
    if label not in SEARCHED:
        return overrides
    searched = read_result(name, label, f"si_pbe_{name}_{TAGS[label]}_s{seed}", runs_dir)
    if not searched:
        return None
    return overrides + [f"la.alpha={searched['la']['alpha']}"]


def report_forces(name: str, runs_dir: Path, seeds: list[int]) -> str:
    """The markdown of the model's product-default section, from whatever runs exist."""
    begin, end = markers(f"{name}-forces")
    found = {label: {s: read(runs_dir, f"si_pbe_{name}_{tag}_s{s}") for s in seeds}
             for label, tag in FORCE_TAGS.items()}
    lines = [begin, f"### {_title(name)} with forces: the product default and its property cards", "",
             f"Generated by `benchmarks/run_model_experiments.py --model {name} --forces`: the four configs "
             f"of the section above trained on DFT energies and forces (`train.force_weight={FORCE_WEIGHT:g}` Å²; "
             "MP pretrains on the 8 EIPs' energies as above, then fine-tunes with forces; LA and MP+LA use the "
             "α the energy-only search chose on the same seed). Test split; the property card by "
             "`eipnn-validate` at the end of each run (PBE references and tolerances as in the issue-22 "
             "table above); one CPU thread per run. 'vs baseline': change of the mean test energy and "
             "force MAE against the force-trained baseline on the seeds both have.", "",
             "| strategy, split seed | test config MAE (eV) | test force MAE (eV/Å) | "
             + " | ".join(heading for heading, _, _ in CARD) + " | checks |",
             "| --- |" + " ---: |" * (len(CARD) + 3)]
    summary = []
    for label, runs in found.items():
        values = {s: card_values(r) for s, r in runs.items() if r}
        for s in seeds:
            alpha = f", α {runs[s]['la']['alpha']:g}" if s in values and "la" in runs[s] else ""
            lines.append(card_row(f"{label}, seed {s}{alpha}", values[s]) if s in values
                         else f"| {label}, seed {s} | not run |" + " |" * (len(CARD) + 2))
        if len(values) > 1:
            lines.append(card_row(f"**{label}, mean of {len(values)} seeds**", card_mean(list(values.values())),
                                  bold=True))
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
    p.add_argument("--forces", action="store_true",
                   help="the product default: energies and forces, with property cards (section <model>-forces)")
    p.add_argument("--alpha-runs", action="store_true",
                   help="train an alpha search (LA, MP+LA) as one run per alpha (<name>_a<alpha>, each "
                   "finishing in a session; kept in benchmarks/finished) instead of one run")
    args = p.parse_args(argv)
    runs_dir = Path(args.runs_dir)
    tags = FORCE_TAGS if args.forces else TAGS
    if not args.report_only:
        for seed in args.seeds:
            for label, tag in tags.items():
                config = config_path(args.model, label)
                name = f"si_pbe_{args.model}_{tag}_s{seed}"
                if args.forces:
                    overrides = force_overrides(args.model, label, seed, runs_dir)
                    if overrides is None:
                        print(f"== {name}: waits for the energy-only α search (si_pbe_{args.model}_{TAGS[label]}_s{seed})")
                        continue
                else:
                    overrides = [f"data.split_seed={seed}", f"seed={seed}"]
                if args.alpha_runs and label in SEARCHED and not args.forces and read(runs_dir, name) is None:
                    for alpha in alpha_grid(args.model, label):
                        run_once(config, alpha_run_name(name, alpha), args.overrides + overrides + [f"la.alpha={alpha}"],
                                 runs_dir)
                    continue
                run_once(config, name, args.overrides + overrides, runs_dir)
    if args.forces:
        return publish(report_forces(args.model, runs_dir, args.seeds), args.results, *markers(f"{args.model}-forces"))
    return publish(report(args.model, runs_dir, args.seeds), args.results, *markers(args.model))


if __name__ == "__main__":
    sys.exit(main())
