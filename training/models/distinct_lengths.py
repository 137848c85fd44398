"""Functions of the edge length computed once per distinct length: training's eager paths
for SchNet's filters and CGCNN's radial terms.

Every edge i->j has a twin j->i of the same length, and near-crystalline cells repeat
lengths, so a batch has at most half as many distinct lengths as edges. A function of the
length alone (a filter network, a radial basis times a weight matrix, an envelope) is
evaluated on the distinct lengths as a table and gathered onto the edges:

* energies only (nothing asks for a derivative by the geometry): the table's rows;
* with forces: the table's rows plus their slopes times the edge's offset, where the slope
  dW/dr is taken by forward-mode differentiation on the distinct lengths and the offset is
  the edge's length minus that same length detached (0 in value, derivative 1). The value
  and the first derivative by each edge's own length are exact, so forces and the weight
  gradients of a force loss are those of the per-edge function (tested per model); what is
  gone is the function's double backward over every edge.

Not in exported models (TorchScript has no forward mode): they evaluate per edge.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

import torch
from torch.autograd import forward_ad


@dataclass
class LengthGroups:
    """Where each edge's length sits among the distinct ones, in edge chunks."""

    distinct: torch.Tensor  # [U] Å, detached
    ids: List[torch.Tensor]  # per chunk [E_k]: the row of each edge in ``distinct``
    offsets: Optional[List[torch.Tensor]]  # per chunk [E_k]: length - distinct (with slopes only)

    def gather(self, table: torch.Tensor, slope: Optional[torch.Tensor] = None) -> List[torch.Tensor]:
        """Each chunk's edge values [E_k, ...] of a table [U, ...] (and its slope)."""
        values = []
        for k, ids in enumerate(self.ids):
            edge_values = table.index_select(0, ids)
            if slope is not None and self.offsets is not None:
                offsets = self.offsets[k].reshape(-1, *([1] * (table.dim() - 1)))
                edge_values = edge_values + slope.index_select(0, ids) * offsets
            values.append(edge_values)
        return values


def group_lengths(lengths: torch.Tensor, chunk: int) -> LengthGroups:
    """The distinct lengths of ``lengths`` [E] and each edge's place among them, with
    offsets that carry the derivative when the lengths require one."""
    distinct, ids = torch.unique(lengths.detach(), return_inverse=True)
    offsets = None
    if lengths.requires_grad:
        offsets = list((lengths - distinct.index_select(0, ids)).split(chunk))
    return LengthGroups(distinct, list(ids.split(chunk)), offsets)


def values_and_slopes(tables: Callable[[torch.Tensor], List[torch.Tensor]],
                      lengths: torch.Tensor) -> List[Tuple[torch.Tensor, torch.Tensor]]:
    """Each table of ``tables(lengths)`` with its derivative by the length, by forward-mode
    differentiation (one pass for all of them)."""
    with forward_ad.dual_level():
        dual = forward_ad.make_dual(lengths, torch.ones_like(lengths))
        pairs = [forward_ad.unpack_dual(table) for table in tables(dual)]
    return [(pair.primal, pair.tangent if pair.tangent is not None else torch.zeros_like(pair.primal))
            for pair in pairs]
