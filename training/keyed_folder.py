"""A folder of work done once and reused: named by the digest of what makes its result.

Strategies store expensive intermediate results here (MP's pretrained weights, LA's
classifier) so later runs asking for the same thing load them instead of training again.
The folder ``<root>/<prefix>-<sha256 of the key, 16 hex>/`` holds ``key.yaml`` (that
identity, checked on reuse), ``config.yaml`` (the run configuration that made it) and the
result file, written last and atomically. A file lock serialises processes asking for the
same key: the second one waits, then finds the result.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from pathlib import Path
from typing import Any, Iterator

import torch
import yaml

from eipnn_calc.errors import EIPNNError

from .config import RunConfig, save_config
from .train.checkpoint import save_atomic


class KeyMismatch(EIPNNError, RuntimeError):
    """A stored folder does not hold what its name says."""


def key_digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


class KeyedFolder:
    """``what`` names the result in errors ("pretraining", "classifier");
    ``setting`` is the config field that moves the root elsewhere."""

    result_name = "result.pt"
    mismatch = KeyMismatch

    def __init__(self, root: Path, prefix: str, key: dict[str, Any], what: str, setting: str) -> None:
        self.key, self.what, self.setting = key, what, setting
        self.path = Path(root) / f"{prefix}-{key_digest(key)}"

    @property
    def result(self) -> Path:
        return self.path / self.result_name

    @property
    def done(self) -> bool:
        return self.result.exists()

    def make_dirs(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def locked(self) -> Iterator["KeyedFolder"]:
        """Hold the folder's lock (the key is checked, or written when new)."""
        self.make_dirs()
        with open(self.path / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                self._check_key()
                yield self
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _check_key(self) -> None:
        stored = self.path / "key.yaml"
        if not stored.exists():
            stored.write_text(yaml.safe_dump(self.key, sort_keys=True))
            return
        if yaml.safe_load(stored.read_text()) != json.loads(json.dumps(self.key)):
            raise self.mismatch(
                f"'{self.path}' holds a different {self.what} than its name says (key.yaml "
                f"differs): delete that folder or set {self.setting} elsewhere"
            )

    def write_config(self, config: RunConfig) -> None:
        save_config(config, self.path / "config.yaml")

    def save(self, payload: dict[str, Any]) -> None:
        save_atomic(payload, self.result)

    def load(self) -> dict[str, Any]:
        return torch.load(self.result, map_location="cpu", weights_only=False)
