"""The training runs behind a results section: start, resume or read them, and summarise.

Each run is a normal run folder ``<runs_dir>/<name>``: skipped when its results.json
exists, resumed when it holds any checkpoint (as ``RunFolder`` decides; strategies with
stages keep theirs in sub-folders). A label-augmentation run that selects nothing leaves
``nothing_selected.txt`` instead of results (kept too, as
``benchmarks/finished/<name>.nothing_selected.txt``) and is not tried again.

Every finished run's results.json is also kept in ``benchmarks/finished/<name>.json``, which
is committed: ``runs/`` does not outlive the machine it was made on, and a section rewritten
later on another one must still find the runs it had (and not train them again). A run
trained by hand (``eipnn-train ...``) joins it with

    .venv/bin/python benchmarks/experiment_runs.py --keep runs/NAME [runs/NAME ...]
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eipnn_training.cli.train import train
from eipnn_training.config import load_config
from eipnn_training.strategies.label_augmentation.errors import NothingSelected
from eipnn_training.markdown_section import publish_section, read_section

FINISHED = Path(__file__).resolve().parent / "finished"
NOTHING_SELECTED = "nothing_selected.txt"  # what an LA run that selected nothing leaves


def kept(name: str) -> Path:
    """Where the committed copy of run ``name``'s results.json lives."""
    return FINISHED / f"{name}.json"


def kept_nothing_selected(name: str) -> Path:
    """Where the committed copy of run ``name``'s nothing-selected marker lives."""
    return FINISHED / f"{name}.{NOTHING_SELECTED}"


def keep(folder: Path) -> Path:
    """Copy a finished run folder's results.json (or, for an LA run that selected nothing,
    its marker) into ``benchmarks/finished``."""
    source, target = folder / "results.json", kept(folder.name)
    if not source.exists() and (folder / NOTHING_SELECTED).exists():
        source, target = folder / NOTHING_SELECTED, kept_nothing_selected(folder.name)
    if not source.exists():
        raise FileNotFoundError(f"{folder} has no results.json: the run has not finished")
    FINISHED.mkdir(exist_ok=True)
    return Path(shutil.copyfile(source, target))


def nothing_selected(runs_dir: Path, name: str) -> bool:
    """True when run ``name`` is an LA run that selected nothing (its run folder says so,
    or the committed copy of its marker)."""
    return (runs_dir / name / NOTHING_SELECTED).exists() or kept_nothing_selected(name).exists()


def run_once(config_path: str, name: str, overrides: list[str], runs_dir: Path) -> dict:
    """results.json of run ``name``: read if finished, else trained (resumed if started);
    {} when label augmentation selected nothing."""
    folder = runs_dir / name
    found = read(runs_dir, name)
    if found is not None:
        return found
    if nothing_selected(runs_dir, name):
        return {}
    config = load_config(config_path, overrides + [f"name={name}", f"runs_dir={runs_dir}"])
    started = (folder / "checkpoints").exists() and any((folder / "checkpoints").rglob("*.pt"))
    print(f"== {name} ({'resume' if started else 'start'})", flush=True)
    try:
        results = train(config, resume=started)
        keep(folder)
        return results
    except NothingSelected as error:  # e.g. raw energies: every train class is K
        (folder / NOTHING_SELECTED).write_text(str(error) + "\n")
        keep(folder)
        return {}


FINISHED_MARK = re.compile(r"<!-- finished runs: (\d+) -->")


def finished_mark(count: int) -> str:
    """The line a generated section carries with its number of finished runs, for ``publish``."""
    return f"<!-- finished runs: {count} -->"


# What a finished run leaves in a section written before the mark: a per-seed cell
# "config / atom MAE" (energy-only tables) or a per-seed row with its number (force tables).
RESULT_CELL = re.compile(r"\| \d+\.\d+ / \d+\.\d+ (?=\|)")
RESULT_ROW = re.compile(r"^\| [^|]*seed \d[^|]*\| -?\d", re.MULTILINE)


def _finished(section: str) -> int:
    """The section's finished runs: its mark, or (a section without one) its result cells."""
    found = FINISHED_MARK.search(section)
    if found:
        return int(found.group(1))
    return len(RESULT_CELL.findall(section)) + len(RESULT_ROW.findall(section))


def publish(section: str, results: str, begin: str, end: str) -> int:
    """Put a generated section into the results file (between its markers) and print it;
    refused (exit status 1) when the new section holds fewer finished runs than the one in
    the file (their ``finished_mark``; a section without one, written before
    ``benchmarks/finished`` existed, by its per-seed result cells): such runs live only in
    the file's text, and a new machine's ``--report-only`` (or a run over fewer seeds) must
    not wipe them."""
    path = Path(results)
    old = read_section(path, begin, end)
    fewer = _finished(section) < _finished(old)
    if old[len(begin):].strip() and fewer:  # an empty section has nothing to lose
        print(section)
        print(f"{results}: not rewritten: its section {begin} shows runs whose results.json is neither under "
              "--runs-dir nor in benchmarks/finished", file=sys.stderr)
        return 1
    publish_section(path, section, begin, end, "# Results")
    return 0


def read(runs_dir: Path, name: str) -> dict | None:
    """results.json of run ``name`` (its run folder's, else the committed copy), or None
    while it has not finished."""
    for path in (runs_dir / name / "results.json", kept(name)):
        if path.exists():
            return json.loads(path.read_text())
    return None


def alpha_run_name(name: str, alpha: float) -> str:
    """The run of LA run ``name``'s search member ``alpha`` trained on its own."""
    return f"{name}_a{alpha:g}"


def read_alpha_search(runs_dir: Path, name: str, grid: list[float]) -> dict | None:
    """results.json of LA (or MP+LA) run ``name``: its own, from an alpha search in one run,
    or, once every alpha of ``grid`` has finished as a run of its own (``alpha_run_name``,
    ``la.alpha`` fixed), the one the search would have chosen: the lowest validation score
    (the combined energy + force MAE when forces are trained), the smaller alpha among
    equals. Each such run is the search's member (same initial weights, same batches; tested),
    and one fits in a session where the whole search of a large model does not. None while
    any is missing."""
    whole = read(runs_dir, name)
    if whole is not None:
        return whole
    parts = {float(alpha): read(runs_dir, alpha_run_name(name, alpha)) for alpha in grid}
    if not parts or any(result is None for result in parts.values()):
        return None
    alphas = sorted(parts)
    scores = [parts[a].get("best_val_combined_mae_ev", parts[a]["best_val_config_mae_ev"]) for a in alphas]
    chosen = json.loads(json.dumps(parts[alphas[int(np.argmin(scores))]]))  # a copy
    chosen["la"]["alpha_search"] = {f"{a:g}": parts[a]["best_val_config_mae_ev"] for a in alphas}
    chosen["la"]["alpha_runs"] = [alpha_run_name(name, a) for a in alphas]
    return chosen


def mean_std(values: list[float], digits: int = 4) -> str:
    """'mean (std)' with the sample standard deviation (n - 1) as everywhere in
    docs/results.md; the mean alone for one value; 'n/a' for none."""
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{np.mean(values):.{digits}f} ({np.std(values, ddof=1):.{digits}f})"


def change(values: list[float], reference: list[float]) -> str:
    """Relative change of the mean of ``values`` against the mean of ``reference``, in %;
    '' when either is empty."""
    if not values or not reference:
        return ""
    return f"{100 * (np.mean(values) / np.mean(reference) - 1):+.1f} %"


def change_on_shared_seeds(runs: dict[int, dict | None], baseline: dict[int, dict | None]) -> str:
    """``change`` of the test configuration MAE over the seeds both have finished, so that a
    strategy with one seed done is not set against a three-seed baseline mean."""
    seeds = [seed for seed, result in runs.items() if result and baseline.get(seed)]
    return change([runs[s]["test_config_mae_ev"] for s in seeds], [baseline[s]["test_config_mae_ev"] for s in seeds])


def strategy_plot(maes: dict[str, dict[int, float]], seeds: list[int], path: Path, title: str) -> None:
    """Test configuration MAE (eV) per split seed, one bar per strategy (a gap while a run
    has not finished), and a last group with the mean and sample std over the seeds of the
    strategies that finished them all."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    width = 0.8 / len(maes)
    figure, axis = plt.subplots(figsize=(7.5, 3.8))
    for k, (strategy, runs) in enumerate(maes.items()):
        offset, color = (k - (len(maes) - 1) / 2) * width, f"C{k}"
        done = [seed for seed in seeds if seed in runs]
        axis.bar([seeds.index(seed) + offset for seed in done], [runs[seed] for seed in done], width, color=color)
        if len(done) == len(seeds) > 1:
            values = [runs[seed] for seed in seeds]
            axis.bar(len(seeds) + offset, np.mean(values), width, yerr=np.std(values, ddof=1), capsize=3,
                     color=color)
    axis.set_xticks(range(len(seeds) + 1), [f"split seed {seed}" for seed in seeds] + ["mean (std)"])
    axis.set(ylabel="test configuration MAE (eV)", title=title)
    handles = [Patch(color=f"C{k}", label=strategy) for k, strategy in enumerate(maes)]  # also for bar-less ones
    axis.legend(handles=handles, fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# The Si property card's columns in results tables: (heading, results key, format).
CARD = (("a0 (Å)", "a0_angstrom", "{:.3f}"), ("B (GPa)", "bulk_modulus_gpa", "{:.0f}"),
        ("C11", "c11_gpa", "{:.0f}"), ("C12", "c12_gpa", "{:.0f}"), ("C44", "c44_gpa", "{:.0f}"),
        ("vacancy (eV)", "vacancy_formation_ev", "{:.2f}"),
        ("E–V wiggle (meV/atom)", "ev_wiggle_mev_per_atom", "{:.1f}"), ("Γ (THz)", "gamma_optical_thz", "{:.2f}"))
NUM_CHECKS = 10  # Si's card; results.json written before the headline had num_checks are all Si
# Of each element of a two-element model, only these (the table would be too wide).
ALLOY_ELEMENT_CARD = (("a0 (Å)", "a0_angstrom", "{:.3f}"), ("B (GPa)", "bulk_modulus_gpa", "{:.0f}"),
                      ("vacancy (eV)", "vacancy_formation_ev", "{:.2f}"))
MIXING_KEY = "mixing_x0.5_mev_per_atom"


@dataclass(frozen=True)
class CardColumn:
    """A results-table column of a property-card figure: of an element, or of an alloy."""

    heading: str
    part: str  # "Si", or an alloy's name ("AgAu")
    key: str
    fmt: str


def card_columns(elements: tuple[str, ...] = ("Si",)) -> list[CardColumn]:
    """The card columns of a model of ``elements``: the whole card of one element (the
    optical phonon at Γ only for Si: fcc metals have none); a0, B and the vacancy of each of
    several elements, and their alloy's mixing energy at x = 0.5."""
    if len(elements) == 1:
        return [CardColumn(h, elements[0], k, f) for h, k, f in CARD if elements == ("Si",) or k != "gamma_optical_thz"]
    alloy = "".join(elements)
    return ([CardColumn(f"{e} {h}", e, k, f) for e in elements for h, k, f in ALLOY_ELEMENT_CARD]
            + [CardColumn(f"{alloy} mixing, x = 0.5 (meV/atom)", alloy, MIXING_KEY, "{:.0f}")])


def card_values(result: dict, columns: list[CardColumn] | None = None) -> dict:
    """A finished run's test MAEs (energy, force), its property-card figures by column
    heading (None where the card could not compute one), and the card's checks: passed and
    judged, over all its elements and alloys."""
    card = result["property_card"]
    parts = {**card["elements"], **card.get("alloys", {})}
    values = {"config": result["test_config_mae_ev"], "force": result["test_force_mae_ev_per_angstrom"]}
    values.update({c.heading: parts[c.part].get(c.key) for c in columns or card_columns()})
    judged = [part.get("num_checks", NUM_CHECKS) for part in parts.values()]
    values["checks"] = sum(judged) - sum(len(part["failed"]) for part in parts.values())
    values["num_checks"] = sum(judged)
    return values


def card_mean(values: list[dict]) -> dict:
    """The mean of several runs' ``card_values``, figure by figure (None where any is)."""
    return {key: None if any(v[key] is None for v in values) else float(np.mean([v[key] for v in values]))
            for key in values[0]}


def card_header(columns: list[CardColumn] | None = None, first: str = "strategy, split seed") -> list[str]:
    """The header lines of a table of ``card_row`` rows."""
    columns = columns or card_columns()
    return [f"| {first} | test config MAE (eV) | test force MAE (eV/Å) | "
            + " | ".join(c.heading for c in columns) + " | checks |",
            "| --- |" + " ---: |" * (len(columns) + 3)]


def card_row(label: str, values: dict, columns: list[CardColumn] | None = None, bold: bool = False) -> str:
    """A results-table row of ``card_values`` (or their means over seeds); '–' for a
    figure the card could not compute."""
    mark = "**" if bold else ""
    cells = [f"{mark}{values['config']:.3f}{mark}", f"{mark}{values['force']:.3f}{mark}"]
    cells += ["–" if values[c.heading] is None else c.fmt.format(values[c.heading]) for c in columns or card_columns()]
    checks, total = values["checks"], values["num_checks"]
    passed = f"{checks:.1f}" if isinstance(checks, float) and not checks.is_integer() else f"{int(checks)}"
    cells.append(f"{passed}/{int(total) if float(total).is_integer() else round(total, 1)}")
    return f"| {label} | " + " | ".join(cells) + " |"


def not_run_row(label: str, columns: list[CardColumn] | None = None) -> str:
    """A results-table row of a run that has not finished."""
    return f"| {label} | not run |" + " |" * (len(columns or card_columns()) + 2)


LA_DIAGNOSTICS_HEADER = [
    "| seed | train classes (EIP: count) | val accuracy (majority share) | selected / pool "
    "| outliers (by severity) | alpha chosen | val MAE by alpha |",
    "| --- | --- | ---: | ---: | --- | ---: | --- |",
]


def la_diagnostics_row(seed: int, info: dict) -> str:
    """One row under LA_DIAGNOSTICS_HEADER from the "la" entry of an LA run's results: why
    LA helps or not (class balance, classifier accuracy, selection, outliers, alpha curve)."""
    classes = ", ".join(f"{k.split('/')[-1]}: {v}" for k, v in info["class_balance"]["train"].items())
    c = info["classifier"]
    outliers = info["outliers"]
    bins = ", ".join(f"{k}: {v}" for k, v in outliers["by_severity"].items())
    curve = ", ".join(f"{a}: {v:.3f}" for a, v in sorted(info["alpha_search"].items(), key=lambda x: float(x[0])))
    return (f"| {seed} | {classes} | {c['val_accuracy']:.3f} ({c['val_accuracy_of_majority_class']:.3f}) "
            f"| {info['num_selected']} / {info['num_pool']} | {outliers['num_outliers']} of "
            f"{outliers['num_graded']} ({bins}) | {info['alpha']:g} | {curve} |")


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every experiment script takes: overrides for every run, the split seeds,
    where the runs are, and the results file whose section is rewritten."""
    parser.add_argument("overrides", nargs="*", help="key=value for every run (e.g. device=cuda)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--report-only", action="store_true", help="only rewrite the results section")
    parser.add_argument("--results", default="docs/results.md")


def add_run_arguments(parser: argparse.ArgumentParser, tag: str) -> None:
    """``add_common_arguments`` and, for the SchNet strategy scripts, the baseline config and
    the run names (``<prefix><tag>_s<seed>``)."""
    add_common_arguments(parser)
    parser.add_argument("--baseline-config", default="examples/si_pbe_schnet_baseline.yaml")
    parser.add_argument("--prefix", default="si_pbe_schnet_", help=f"run names: <prefix>{tag}_s1, ...")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Keep finished runs' results.json in benchmarks/finished.")
    parser.add_argument("--keep", nargs="+", type=Path, required=True, metavar="RUN_FOLDER")
    for folder in parser.parse_args().keep:
        print(keep(folder))
    sys.exit(0)
