"""``tune_malloc`` (eipnn_calc/malloc.py; the calculator's opt-in, always on in eipnn-train):
large temporaries freed and allocated again do not page-fault once the heap has grown."""
from __future__ import annotations

import subprocess
import sys

# Four rounds of ten 6 MB tensors written and freed; prints the page faults of each round.
ROUNDS = """
import resource, sys, torch
if sys.argv[1] == "keep":
    from eipnn_calc.malloc import tune_malloc
    assert tune_malloc()
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [torch.ones(6 << 18) for _ in range(10)]
    del blocks
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(" ".join(str(faults()) for _ in range(4)))
"""


def _faults(mode: str) -> list[int]:
    done = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True)
    return [int(f) for f in done.stdout.split()]


def test_freed_memory_is_reused_without_page_faults():
    default, kept = _faults("default"), _faults("keep")
    pages = 10 * (6 << 20) // 4096  # what one round touches
    # glibc's own settings map or trim the blocks again after the first round ...
    assert sum(default[1:]) > pages
    # ... the training settings keep them: after the heap has grown, no round faults.
    assert max(kept[2:]) < pages // 20
