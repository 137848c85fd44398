"""Thousands of hostile configurations against EIPNNCalculator (the generator and the verdicts
of tests/fuzz_configurations.py, which the test suite runs a few hundred of).

Counts what the issue's targets count: hangs (over 10 s), answers that are not finite, errors
that are not eipnn's own (opaque), silently wrong answers (a translated copy, or a fresh
calculator after an in-place change, disagrees), and the peak memory of the whole run
against the calculator's memory limit. A paper-size SchNet (random weights: the input
handling does not depend on them).

    python benchmarks/fuzz_calculator.py [--examples 2000] [--memory-limit-gb 4]

Prints a table and writes it to docs/benchmarks.md (section "fuzz").
"""
from __future__ import annotations

import argparse
import collections
import ctypes
import gc
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch
from hypothesis import HealthCheck, given, settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench_calculator import paper_size_model  # noqa: E402  (benchmarks/, beside this script)
from fuzz_configurations import calculator_factory, hostile_atoms, judge  # noqa: E402
from eipnn_training.markdown_section import write_section

BAD = ("opaque", "non_finite", "slow", "wrong")
LIBC = ctypes.CDLL("libc.so.6")


def run(examples: int, memory_limit_gb: float, seed: int) -> tuple[list, float]:
    verdicts = []
    with tempfile.TemporaryDirectory() as tmp:
        make = calculator_factory(paper_size_model(Path(tmp) / "schnet.pt"), memory_limit_gb)

        @settings(max_examples=examples, deadline=None, database=None, derandomize=False,
                  suppress_health_check=list(HealthCheck), phases=["generate"])
        @given(atoms=hostile_atoms())
        def check(atoms):
            kind = atoms.info["fuzz"]
            verdict = judge(make, atoms, seed=seed + len(verdicts))
            verdicts.append((kind, verdict))
            # Hand freed memory back, so the run's peak RSS is the largest single example's
            # and not the sum of what glibc kept from earlier ones.
            gc.collect()
            LIBC.malloc_trim(0)
            if len(verdicts) % 200 == 0:
                print(f"{len(verdicts)} examples", flush=True)

        start = time.perf_counter()
        check()
    return verdicts, time.perf_counter() - start


def table(verdicts: list, seconds: float, memory_limit_gb: float) -> str:
    outcomes = collections.Counter(v.outcome for _, v in verdicts)
    by_cell = collections.defaultdict(collections.Counter)
    for kind, verdict in verdicts:
        by_cell[kind.split("cell ")[1].split(",")[0]][verdict.outcome] += 1
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9
    lines = [f"{len(verdicts):,} examples in {seconds:.0f} s; slowest single call {max(v.seconds for _, v in verdicts):.2f} s; "
             f"peak RSS of the whole run {peak_gb:.2f} GB against a memory limit of {memory_limit_gb:g} GB",
             "",
             "| cell | answered | refused | opaque | non-finite | slow (> 10 s) | wrong |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for cell in sorted(by_cell):
        c = by_cell[cell]
        lines.append(f"| {cell} | {c['answered']} | {c['refused']} | {c['opaque']} | {c['non_finite']} "
                     f"| {c['slow']} | {c['wrong']} |")
    lines.append(f"| **all** | {outcomes['answered']} | {outcomes['refused']} | {outcomes['opaque']} "
                 f"| {outcomes['non_finite']} | {outcomes['slow']} | {outcomes['wrong']} |")
    refusals = collections.Counter(v.detail.split(":")[0] for _, v in verdicts if v.outcome == "refused")
    lines += ["", "Refused by: " + ", ".join(f"{name} {count}" for name, count in refusals.most_common()) + "."]
    findings = [f"- {v.outcome}: {v.detail}" for _, v in verdicts if v.outcome in BAD][:20]
    if findings:
        lines += ["", "Findings:", *findings]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--examples", type=int, default=2000)
    p.add_argument("--memory-limit-gb", type=float, default=4.0)
    p.add_argument("--seed", type=int, default=0, help="seed of the in-place changes")
    p.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = p.parse_args()
    torch.set_num_threads(1)
    verdicts, seconds = run(args.examples, args.memory_limit_gb, args.seed)
    text = table(verdicts, seconds, args.memory_limit_gb)
    print(text)
    if not args.no_write:
        begin, end = "<!-- fuzz:start -->", "<!-- fuzz:end -->"
        body = (f"{begin}\n## EIPNNCalculator under hostile input\n\n"
                "Random configurations from `tests/fuzz_configurations.py` (0-60 atoms; cells fine, sheared, "
                "nearly degenerate, paper-thin, huge, with a zero or a non-finite vector; any periodicity; "
                "positions inside, clustered, far from the origin, coincident or non-finite; unknown species "
                "and numbers that are no element) through a paper-size SchNet, one thread. *Answered*: finite "
                "energy, forces and stress, equal to those of a translated copy and, after an in-place change, "
                "to a fresh calculator's. *Refused*: one of eipnn's own errors. The rest are findings.\n\n"
                f"{text}\n\nReproduce: `python benchmarks/fuzz_calculator.py --examples {args.examples}`.\n{end}")
        write_section(Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md", body, begin, end, "# Benchmarks")


if __name__ == "__main__":
    main()
