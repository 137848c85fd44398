"""The minimal picture of a configuration that crosses process boundaries.

Workers receive these plain arrays instead of ASE Atoms: they pickle faster and carry
exactly what the content hash covers, so what is labelled is what is keyed.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

HASH_VERSION = b"eipnn-structure-v1"
_HASH_START = hashlib.blake2b(HASH_VERSION, digest_size=16)


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
        """BLAKE2b-128 of the exact numbers, positions, cell and pbc (32 hex characters).

        Exact bytes, no rounding: any change in a coordinate is a different configuration
        (rounding would merge configurations across a rounding boundary unpredictably).
        The arrays are fed as buffers, without copies: hashing is on the hot path.
        """
        pbc = self.pbc
        digest = _HASH_START.copy()  # = blake2b(HASH_VERSION, digest_size=16), made once
        digest.update(len(self.numbers).to_bytes(8, "little"))
        digest.update(self.numbers)
        digest.update(self.positions)
        # Only periodic directions of the cell matter: a free cluster hashes the same in
        # any box. (Plain indexing: ndarray.all() costs more than the whole hash.)
        periodic = pbc[0] and pbc[1] and pbc[2]
        digest.update(self.cell if periodic else np.where(pbc[:, None], self.cell, 0.0))
        digest.update(pbc)
        return digest.hexdigest()
