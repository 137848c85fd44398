"""``property_card.md``: the card as a page a materials scientist reads, made from the
same dict as ``property_card.json``."""
from __future__ import annotations

from typing import Any

from .comparison import LABELS

PART_TITLES = {"ev": "E–V", "elastic": "elastic", "vacancy": "vacancy", "phonons": "phonons", "nve": "NVE"}


def _value(key: str, value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    try:
        return LABELS[key][2].format(value)
    except (KeyError, ValueError, TypeError):
        return str(value)


def _deviation(row: dict[str, Any]) -> str:
    if row["deviation"] is None:
        return ""
    if row["tolerance"] and row["tolerance"].endswith("%") and row["relative_deviation"] is not None:
        return f"{100 * row['relative_deviation']:+.2f} %"
    return f"{row['deviation']:+.3g}"


def _verdict(passed: Any) -> str:
    return "" if passed is None else ("pass" if passed else "**fail**")


def _table(record: dict[str, Any]) -> list[str]:
    rows = record["rows"]
    if record["has_references"]:
        lines = ["| property | value | reference (PBE) | deviation | tolerance | pass/fail |",
                 "| --- | ---: | ---: | ---: | --- | --- |"]
    else:  # no reference values: only the reference-free checks are judged
        lines = ["| property | value | check | pass/fail |", "| --- | ---: | --- | --- |"]
    for row in rows:
        label = row["label"] + (f" ({row['unit']})" if row["unit"] else "")
        value = _value(row["key"], row["value"])
        if record["has_references"]:
            reference = "" if row["reference"] is None else _value(row["key"], row["reference"])
            if row["source"]:
                reference += f" [{row['source']}]"
            lines.append(f"| {label} | {value} | {reference} | {_deviation(row)} | {row['tolerance'] or ''} "
                         f"| {_verdict(row['passed'])} |")
        else:
            lines.append(f"| {label} | {value} | {row['tolerance'] or ''} | {_verdict(row['passed'])} |")
    return lines


def _details(record: dict[str, Any], settings: dict[str, Any], model_card: bool) -> list[str]:
    d, s, lines = record["details"], settings, []
    if "ev" in d:
        ev = d["ev"]
        fit = (f"Birch–Murnaghan on the {ev['eos_points']} points within ±{100 * s['eos_window']:g} % of the lowest"
               if ev["eos_points"] else "no Birch–Murnaghan fit (see the notes)")
        lines.append(f"- E–V: {len(ev['lattice_angstrom'])} lattice constants over "
                     f"{record['lattice_range_angstrom'][0]:g}–{record['lattice_range_angstrom'][1]:g} Å, "
                     f"{fit}; wiggle = largest |E − quartic in a| over the whole range.")
    if "a0_used_angstrom" in d:
        lines.append(f"- The other parts use the model's a0 = {d['a0_used_angstrom']:.4f} Å.")
    if "c11_gpa" in record["values"]:
        lines.append(f"- Elastic: ±{100 * s['strain']:g} % strains of the conventional cell, stress by central "
                     f"differences; C44 with the atoms relaxed (BFGS, fmax {s['relax_fmax_ev_per_angstrom']:g} eV/Å).")
    if "vacancy" in d:
        v = d["vacancy"]
        lines.append(f"- Vacancy: {v['num_atoms']}-atom cell, E_f = E(N−1, relaxed) − (N−1)/N E(N) at fixed cell, "
                     f"relaxed in {v['relax_steps']} BFGS steps to fmax {s['vacancy_fmax_ev_per_angstrom']:g} eV/Å"
                     f"{'' if v['converged'] else ' (NOT converged)'}.")
    if "phonons" in d:
        p = d["phonons"]
        lines.append(f"- Phonons: ase.phonons, {p['supercell']}³ primitive supercell, δ = "
                     f"{s['phonon_delta_angstrom']:g} Å, path {p['path']}.")
    if "nve" in d:
        n = d["nve"]
        lines.append(f"- NVE: {n['num_atoms']} atoms, velocity Verlet dt = {n['timestep_fs']:g} fs, "
                     f"{n['steps_done']}/{n['steps_asked']} steps ({n['steps_done'] * n['timestep_fs'] / 1000:g} ps), "
                     f"velocities at 2 × {s['md_temperature_k']:g} K (seed {s['md_seed']})"
                     f"{', ' + s['md_dtype'] if model_card else ''}; "
                     f"stable = no two atoms closer than {s['md_min_distance_angstrom']:g} Å at any check "
                     f"(every {s['md_check_every']} steps); max |E − E(0)| "
                     f"{n['max_energy_excursion_mev_per_atom']:.2f} meV/atom.")
    for part, note in record["notes"].items():
        lines.append(f"- Note ({part}): {note}")
    return lines


def card_markdown(card: dict[str, Any]) -> str:
    h = card["header"]
    verdict = {True: "PASS", False: "FAIL", None: "no checks"}[card["passed"]]
    lines = [f"# Property card: {card['title']}", ""]
    if h:
        model = h.get("model", {})
        hyper = model.get("spec", {}).get("hyperparameters", "")
        lines += [f"Model `{h.get('model_path', '')}` (sha256 {h.get('sha256', '')[:16]}…): "
                  f"{model.get('kind', '?')} {hyper}, species {', '.join(h.get('species', []))}, "
                  f"cutoff {h.get('cutoff_angstrom', '?')} Å, {h.get('num_layers', '?')} layers, "
                  f"file dtype {h.get('model_dtype', '?')}.", ""]
        if h.get("provenance"):
            lines += [f"Provenance: `{h['provenance']}`", ""]
    mode = "quick (coarse grids, small cells, short MD: not the full card)" if card["quick"] else "full"
    how = (f"Computed through the public calculator only (EIPNNCalculator, {card['settings']['dtype']}; "
           f"MD {card['settings']['md_dtype']})." if h else "Computed with the ASE calculator given.")
    lines += [f"Settings: {mode}. {how}", "",
              f"**Overall: {verdict}**", ""]
    for symbol, record in card["elements"].items():
        checks = f"{record['num_passed']}/{record['num_checks']} checks pass" if record["num_checks"] else "no checks"
        lines += [f"## {symbol} ({record['structure']}): {checks}", ""]
        if not record["has_references"]:
            lines += [f"No reference values for {symbol} ({record['origin']}): values and the "
                      "reference-free checks only.", ""]
        lines += _table(record) + [""] + _details(record, card["settings"], bool(h)) + [""]
        lines += [f"![{part}]({name})" for part, name in record["figures"].items()] + [""]
        lines += ["| part | seconds |", "| --- | ---: |"]
        lines += [f"| {PART_TITLES.get(part, part)} | {seconds:.1f} |" for part, seconds in record["seconds"].items()]
        lines.append("")
    for name, record in card.get("alloys", {}).items():
        checks = f"{record['num_passed']}/{record['num_checks']} checks pass" if record["num_checks"] else "no checks"
        lines += [f"## {name} ({record['structure']}): {checks}", ""]
        if not record["has_references"]:
            lines += [f"No reference mixing energies for {name}: values only.", ""]
        lines += [f"Note: {note}" for note in record["notes"].values()] + _table(record) + [""]
        if record["details"]:
            d = record["details"]
            lines += ["Relaxed lattice constants (Å) for x = " + ", ".join(f"{x:g}" for x in d["fractions"]) + ": "
                      + ", ".join(f"{a:.4f}" for a in d["lattice_angstrom"]) + ".", ""]
        lines += [f"![{part}]({figure})" for part, figure in record["figures"].items()] + [""]
    for symbol, reason in card["skipped"].items():
        lines += [f"## {symbol}: skipped", "", reason, ""]
    if card["sources"]:
        lines += ["## References", ""]
        lines += [f"- [{key}] {citation}" for key, citation in card["sources"].items()]
        lines.append("")
    lines += [f"References file: `{card['references_file']}`. Total {card['seconds_total']:.1f} s.", ""]
    return "\n".join(lines)
