"""Where configurations come from: an extxyz file, a list of ASE Atoms, or "si-pbe"."""
from __future__ import annotations

import os
from pathlib import Path

from ..data.errors import DatasetFileError

DATASETS = ("si-pbe",)


def load_configurations(source) -> list:
    """ASE Atoms from a list of Atoms (returned as is), a dataset name, or a file ase reads."""
    if isinstance(source, (list, tuple)):
        return list(source)
    if isinstance(source, (str, os.PathLike)):
        if str(source) == "si-pbe":
            from ..data.si_pbe import load_si_pbe

            return load_si_pbe()
        path = Path(source)
        if not path.exists():
            raise DatasetFileError(
                f"no configuration file '{path}': give an extxyz path, a list of ASE Atoms, "
                f"or a dataset name ({', '.join(DATASETS)})"
            )
        import ase.io

        try:
            return ase.io.read(path, ":")
        except Exception as err:  # ase raises many kinds for a file it cannot parse
            raise DatasetFileError(
                f"could not read configurations from '{path}': {type(err).__name__}: {err}"
            ) from None
    raise TypeError(
        f"cannot read configurations from {type(source).__name__}: give an extxyz path, "
        "a list of ASE Atoms, or a dataset name"
    )
