"""The paper's empirical potentials by short name, and name resolution.

A short name (``si/sw-bht``) maps to a KIM portable-model ID from Debian's
``openkim-models`` (2021.01.28, the collection the paper used) or, for the one potential
that collection only ships as a LAMMPS simulator model (Tersoff TMOD), to an ASE
calculator built in-process. Any other installed KIM portable model is usable by its full
ID. The ``eip_id`` of a resolved EIP is what the label store keys on, so it must change
whenever the potential's energies could.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Callable

from .errors import EIPNotInstalled, UnknownEIP

DEBIAN_PACKAGE = "openkim-models"

KIM_CATALOGUE: dict[str, str] = {
    # Si (8, with si/tersoff-tmod below)
    "si/edip": "EDIP_JustoBazantKaxiras_1998_Si__MO_958932894036_002",
    "si/meam-lenosky": "MEAM_LAMMPS_LenoskySadighAlonso_2000_Si__MO_533426548156_000",
    "si/sw-bht": "SW_BalamaneHaliciogluTiller_1992_Si__MO_113686039439_004",
    "si/sw-silicene1": "SW_ZhangXieHu_2014OptimizedSW1_Si__MO_800412945727_004",
    "si/tersoff-t2": "Tersoff_LAMMPS_Tersoff_1988T2_Si__MO_245095684871_003",
    "si/tersoff-t3": "Tersoff_LAMMPS_Tersoff_1988T3_Si__MO_186459956893_003",
    "si/tersoff-erhart-albe": "Tersoff_LAMMPS_ErhartAlbe_2005_SiC__MO_903987585848_004",
    # Al (10)
    "al/emt": "EMT_Asap_Standard_JacobsenStoltzeNorskov_1996_Al__MO_623376124862_001",
    "al/morse-low": "Morse_Shifted_GirifalcoWeizer_1959LowCutoff_Al__MO_411898953661_004",
    "al/morse-med": "Morse_Shifted_GirifalcoWeizer_1959MedCutoff_Al__MO_279544746097_004",
    "al/morse-high": "Morse_Shifted_GirifalcoWeizer_1959HighCutoff_Al__MO_140175748626_004",
    "al/eam-ercolessi-adams": "EAM_Dynamo_ErcolessiAdams_1994_Al__MO_123629422045_005",
    "al/eam-sturgeon-laird": "EAM_Dynamo_SturgeonLaird_2000_Al__MO_120808805541_005",
    "al/eam-winey-kubota-gupta": "EAM_Dynamo_WineyKubotaGupta_2010_Al__MO_149316865608_005",
    "al/eam-zope-mishin": "EAM_Dynamo_ZopeMishin_2003_Al__MO_664470114311_005",
    "al/eam-zhakhovsky": "EAM_Dynamo_Zhakhovsky_2009_Al__MO_519613893196_000",
    "al/eam-zhou-johnson-wadley": (
        "EAM_Dynamo_ZhouJohnsonWadley_2004NISTretabulation_Al__MO_060567868558_000"
    ),
    # AgAu (2)
    "agau/eam-zhou-johnson-wadley": (
        "EAM_Dynamo_ZhouJohnsonWadley_2004NISTretabulation_CuAgAu__MO_318213562153_000"
    ),
    "agau/emt": "EMT_Asap_Standard_JacobsenStoltzeNorskov_1996_AlAgAuCuNiPdPt__MO_115316750986_001",
}


def _kumagai_tmod():
    """Tersoff TMOD (Kumagai, Izumi, Hara, Sakai 2007) from matscipy's parameterisation."""
    from matscipy.calculators.manybody import Manybody
    from matscipy.calculators.manybody.explicit_forms import Kumagai
    from matscipy.calculators.manybody.explicit_forms.kumagai import (
        Kumagai_Comp_Mat_Sci_39_Si,
    )

    return Manybody(**Kumagai(Kumagai_Comp_Mat_Sci_39_Si))


def _kumagai_parameters() -> dict:
    from matscipy.calculators.manybody.explicit_forms.kumagai import (
        Kumagai_Comp_Mat_Sci_39_Si,
    )

    return dict(Kumagai_Comp_Mat_Sci_39_Si)


@dataclass(frozen=True)
class CalculatorEIP:
    """An EIP that runs as an ASE calculator in the worker process.

    ``identity`` names the functional form and ``parameters`` its numbers: both go into the
    ``eip_id``, so changed parameters never reuse stale labels.
    """

    identity: str
    factory: Callable[[], object]
    parameters: Callable[[], dict]
    species: tuple[str, ...]


CALCULATOR_CATALOGUE: dict[str, CalculatorEIP] = {
    "si/tersoff-tmod": CalculatorEIP(
        identity="matscipy.Manybody.Kumagai2007",
        factory=_kumagai_tmod,
        parameters=_kumagai_parameters,
        species=("Si",),
    ),
}

GROUPS: dict[str, tuple[str, ...]] = {
    group: tuple(
        name
        for name in [*KIM_CATALOGUE, *CALCULATOR_CATALOGUE]
        if name.startswith(group + "/")
    )
    for group in ("si", "al", "agau")
}


@dataclass(frozen=True)
class EIP:
    """A resolved EIP: ``name`` as the user gave it, ``eip_id`` the label-store key,
    ``kind`` "kim" (``kim_id`` set) or "calculator" (``calculator`` set)."""

    name: str
    eip_id: str
    kind: str
    kim_id: str | None = None
    calculator: str | None = None


def calculator_eip_id(name: str) -> str:
    entry = CALCULATOR_CATALOGUE[name]
    blob = json.dumps(entry.parameters(), sort_keys=True, default=str).encode()
    return f"ase:{entry.identity}:{hashlib.sha256(blob).hexdigest()[:12]}"


_KIM_LOG_QUIET = False


def quiet_kim_log(kimpy) -> None:
    """Log only errors: at the KIM API's default level every model or collections object
    created appends lines to ./kim.log in the working directory."""
    global _KIM_LOG_QUIET
    if not _KIM_LOG_QUIET:
        kimpy.log.Log.push_default_verbosity(kimpy.log_verbosity.error)
        _KIM_LOG_QUIET = True


@functools.lru_cache(maxsize=None)  # the collections lookup costs ~1 ms; installs are rare
def kim_item_type(kim_id: str) -> str | None:
    """"portableModel", "simulatorModel", "modelDriver", or None when not installed."""
    try:
        import kimpy
    except ImportError as error:
        raise EIPNotInstalled(
            "kimpy is not importable: install the KIM API (Debian: apt-get install "
            f"libkim-api-dev {DEBIAN_PACKAGE}) and then `pip install kimpy`"
        ) from error
    quiet_kim_log(kimpy)
    try:
        return str(kimpy.collections.create().get_item_type(kim_id))
    except RuntimeError:
        return None


def is_installed(name: str) -> bool:
    """Whether the EIP ``name`` (short name or KIM ID) can run on this machine."""
    if name in CALCULATOR_CATALOGUE:
        return True
    try:
        return kim_item_type(KIM_CATALOGUE.get(name, name)) == "portableModel"
    except EIPNotInstalled:  # no KIM API at all: every KIM model is missing
        return False


# Suffix of the label-store key of a KIM model for several elements: its labels are computed
# with one model object per element set (kim_model.KIMModelPerElements). Labels stored under
# the bare KIM ID before that may be wrong (Asap's EMT gave every element its first one's) and
# are not reused.
PER_ELEMENT_SET = ":per-element-set"


def kim_store_id(kim_id: str) -> str:
    """The label-store key of a KIM portable model: its ID, plus ``PER_ELEMENT_SET`` when the
    ID names more than one element (KIM IDs end in ``_<elements>__MO_<number>_<version>``)."""
    species = kim_id.split("__MO_")[0].rsplit("_", 1)[-1]
    elements = re.findall(r"[A-Z][a-z]?", species)
    return kim_id + PER_ELEMENT_SET if len(elements) > 1 else kim_id


def resolve(name: str) -> EIP:
    """The EIP for a short name, a group (use :func:`expand`), or an installed KIM model ID.

    Raises :class:`EIPNotInstalled` naming the Debian package when a catalogued KIM model is
    absent, and :class:`UnknownEIP` for anything else that is not installed.
    """
    if name in CALCULATOR_CATALOGUE:
        return EIP(name, calculator_eip_id(name), "calculator", calculator=name)
    kim_id = KIM_CATALOGUE.get(name, name)
    item_type = kim_item_type(kim_id)
    if item_type == "portableModel":
        return EIP(name, kim_store_id(kim_id), "kim", kim_id=kim_id)
    if name in KIM_CATALOGUE or kim_id.count("__MO_") == 1:
        raise EIPNotInstalled(
            f"KIM model '{kim_id}' ({name}) is not installed: install the Debian package "
            f"'{DEBIAN_PACKAGE}' (apt-get install {DEBIAN_PACKAGE}) or the model with "
            "kim-api-collections-management"
        )
    if item_type is not None:
        raise UnknownEIP(
            f"'{name}' is a KIM {item_type}, not a portable model: only portable models "
            "run through kimpy (for a LAMMPS simulator model, add an ASE calculator entry)"
        )
    raise UnknownEIP(
        f"unknown EIP '{name}': use a short name from `eipnn-label --list` "
        f"({', '.join(sorted([*KIM_CATALOGUE, *CALCULATOR_CATALOGUE])[:3])}, ...), "
        "a group (si, al, agau), or the full ID of an installed KIM portable model"
    )


def expand(names: list[str] | tuple[str, ...] | str) -> list[str]:
    """Short names with groups ("si", "al", "agau") expanded, order kept, no duplicates."""
    if isinstance(names, str):
        names = [part for part in names.split(",") if part]
    expanded: list[str] = []
    for name in names:
        for item in GROUPS.get(name, (name,)):
            if item not in expanded:
                expanded.append(item)
    return expanded


def eip_ids(names: list[str]) -> list[str]:
    """Store keys of the EIPs named (groups expanded), in order: they identify the EIPs in
    cache keys (a KIM ID names one exact model version)."""
    return [resolve(name).eip_id for name in expand(names)]


def catalogue_rows() -> list[tuple[str, str, bool]]:
    """(short name, KIM ID or calculator identity, installed) for every catalogued EIP."""
    rows = []
    for group in GROUPS.values():
        for name in group:
            if name in KIM_CATALOGUE:
                rows.append((name, KIM_CATALOGUE[name], is_installed(name)))
            else:
                rows.append((name, CALCULATOR_CATALOGUE[name].identity, True))
    return rows
