"""The minimal picture of a configuration that crosses process boundaries.

Workers receive these plain arrays instead of ASE Atoms: they pickle faster and carry
exactly what the content hash covers, so what is labelled is what is keyed.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

HASH_VERSION = b"eipnn-structure-v1"


@dataclass(frozen=True)
class Structure:
    numbers: np.ndarray  # [N] int64 atomic numbers
    positions: np.ndarray  # [N, 3] float64, Å
    cell: np.ndarray  # [3, 3] float64, Å
    pbc: np.ndarray  # [3] bool

    @classmethod
    def from_atoms(cls, atoms) -> "Structure":
        return cls(
            numbers=np.ascontiguousarray(atoms.numbers, dtype=np.int64),
            positions=np.ascontiguousarray(atoms.positions, dtype=np.float64),
            cell=np.ascontiguousarray(atoms.cell.array, dtype=np.float64),
            pbc=np.ascontiguousarray(atoms.pbc, dtype=bool),
        )

    def to_atoms(self):
        from ase import Atoms

        return Atoms(numbers=self.numbers, positions=self.positions, cell=self.cell, pbc=self.pbc)

    def content_hash(self) -> str:
        """SHA-256 of the exact numbers, positions, cell and pbc (hex, 32 characters).

        Exact bytes, no rounding: any change in a coordinate is a different configuration
        (rounding would merge configurations across a rounding boundary unpredictably).
        """
        digest = hashlib.sha256(HASH_VERSION)
        digest.update(np.int64(len(self.numbers)).tobytes())
        digest.update(self.numbers.tobytes())
        digest.update(self.positions.tobytes())
        # Cell and pbc only matter where periodic; a free cluster hashes the same in any box.
        digest.update(np.where(self.pbc[:, None], self.cell, 0.0).tobytes())
        digest.update(self.pbc.tobytes())
        return digest.hexdigest()[:32]
