"""CGCNN (Xie & Grossman 2018), the paper's third model, made a potential (issue 18).

The original's gated graph convolution: for each edge i <- j, z = [v_i, v_j, u(r_ij)],
message = sigma(z W_f + b_f) * g(z W_s + b_s), summed into i; v_i <- g(v_i + sum_j message)
with g = softplus. It is not a potential as published: it caps each atom at its 12 nearest
neighbours, cuts its Gaussians hard at the radius, normalises with BatchNorm (which couples
the configurations of a batch and differs between training and inference) and mean-pools;
each makes energy or forces discontinuous or size-dependent. Here:

* every neighbour within the cutoff (no cap), in the smooth radial bases SchNet has
  (``schnet.RADIAL_BASES``: the paper width Gaussians or Bessel functions), and every message
  times an envelope that takes it to zero, with its slope, at the cutoff;
* no BatchNorm: ``norm: none`` (default) or ``layer`` (LayerNorm over each atom's features,
  which depends on that atom alone);
* shifted softplus (g(0) = 0) for g, so an atom without neighbours keeps finite, centred
  features; the potential sums per-atom energies (``Potential``).

z W splits into v_i W_i + v_j W_j + u(r) W_u: the first two are atom-sized matmuls gathered
onto the edges, the last a function of the edge length alone, which training computes once
per distinct length (``distinct_lengths``) and the exported model reads from a table
(``tabulated.TabulatedCGCNN``).
"""
from __future__ import annotations

from typing import List, Optional

import torch
from torch import nn

from .distinct_lengths import group_lengths, values_and_slopes
from .layers import ShiftedSoftplus
from .schnet import EDGE_CHUNK, leading_rows, radial_parts

NORMS = ("none", "layer")


class GatedConvolution(nn.Module):
    """One CGCNN layer: v_i <- ssp(norm(v_i + sum_j env(r_ij) sigma(f_ij) * ssp(s_ij))), with
    [f_ij, s_ij] = v_i W_i + v_j W_j + (u(r_ij) W_u + b)."""

    def __init__(self, num_features: int, num_rbf: int, norm: str) -> None:
        super().__init__()
        self.receiver = nn.Linear(num_features, 2 * num_features, bias=False)
        self.sender = nn.Linear(num_features, 2 * num_features, bias=False)
        self.radial = nn.Linear(num_rbf, 2 * num_features)  # holds both biases b_f, b_s
        self.norm = nn.LayerNorm(num_features) if norm == "layer" else nn.Identity()
        self.activation = ShiftedSoftplus()
        self.num_features = num_features

    def forward(
        self,
        x: torch.Tensor,
        receivers: List[torch.Tensor],
        senders: List[torch.Tensor],
        radial: List[torch.Tensor],
        envelope: List[torch.Tensor],
        count: Optional[int] = None,
    ) -> torch.Tensor:
        """``radial[k]`` [E_k, 2F]: u(r) W_u + b of chunk k's edges; ``envelope[k]`` [E_k];
        ``count``: use only the first ``count`` edges (the KIM driver's pruned layers)."""
        if count is not None:
            receivers, senders = leading_rows(receivers, count), leading_rows(senders, count)
            radial, envelope = leading_rows(radial, count), leading_rows(envelope, count)
        at_receiver, at_sender = self.receiver(x), self.sender(x)  # [N, 2F] each
        aggregated = torch.zeros_like(x)
        features = self.num_features
        for k in range(len(radial)):
            z = at_receiver.index_select(0, receivers[k]) + at_sender.index_select(0, senders[k]) + radial[k]
            gate, core = z[:, :features], z[:, features:]
            messages = torch.sigmoid(gate) * self.activation(core) * envelope[k].unsqueeze(-1)
            aggregated = aggregated.index_add(0, receivers[k], messages)
        return self.activation(self.norm(x + aggregated))


class CGCNN(nn.Module):
    """Per-atom features [N, num_features] from species and edge lengths.

    ``radial_basis`` names a ``schnet.RADIAL_BASES`` entry (default "gaussian": 128 at the
    paper's width, with the cosine envelope); ``num_rbf``, ``rbf_width`` and ``envelope`` as
    for SchNet; ``norm`` one of NORMS."""

    def __init__(
        self,
        num_species: int,
        cutoff_angstrom: float = 5.0,
        num_features: int = 128,
        num_layers: int = 5,
        num_rbf: Optional[int] = None,
        radial_basis: str = "gaussian",
        rbf_width: Optional[str] = None,
        envelope: Optional[str] = None,
        norm: str = "none",
    ) -> None:
        super().__init__()
        rbf, envelope_module, num_rbf = radial_parts(radial_basis, num_rbf, rbf_width, envelope, cutoff_angstrom)
        if norm not in NORMS:
            raise ValueError(f"unknown norm '{norm}'; known: {', '.join(NORMS)} (no BatchNorm: it couples a batch)")
        if num_layers < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        self.num_layers = num_layers
        self.num_features = num_features
        self.edge_chunk = EDGE_CHUNK
        self.embedding = nn.Embedding(num_species, num_features)
        self.rbf, self.envelope = rbf, envelope_module
        self.convolutions = nn.ModuleList([GatedConvolution(num_features, num_rbf, norm) for _ in range(num_layers)])

    def forward(
        self,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        vectors: torch.Tensor,
        lengths: torch.Tensor,
        layer_edges: Optional[List[int]] = None,
    ) -> torch.Tensor:
        """``layer_edges[l]``: layer ``l`` uses only that many leading edges (the KIM driver's
        pruning, ``Potential.forward``); None: all of them."""
        x = self.embedding(species)
        if layer_edges is None and not torch.jit.is_scripting():
            return self._by_length(x, edge_index, lengths)
        length_chunks = lengths.split(self.edge_chunk)
        rbf = [self.rbf(chunk) for chunk in length_chunks]
        envelope = [self.envelope(chunk) for chunk in length_chunks]
        receivers = list(edge_index[0].split(self.edge_chunk))
        senders = list(edge_index[1].split(self.edge_chunk))
        for layer, convolution in enumerate(self.convolutions):
            count = None if layer_edges is None else layer_edges[layer]
            layer_rbf = rbf if count is None else leading_rows(rbf, count)  # a pruned layer: its edges only
            x = convolution(x, receivers, senders, [convolution.radial(chunk) for chunk in layer_rbf], envelope, count)
        return x

    @torch.jit.unused
    def _by_length(self, x: torch.Tensor, edge_index: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``forward`` in eager training: the envelope and every layer's radial term
        u(r) W_u + b once per distinct edge length (``distinct_lengths``), with their slopes
        when forces are asked for. The radial matmul was a third of an energy step, on
        every edge. Not in the exported model: it evaluates per edge."""
        groups = group_lengths(lengths, self.edge_chunk)
        receivers = list(edge_index[0].split(self.edge_chunk))
        senders = list(edge_index[1].split(self.edge_chunk))

        def tables(distinct: torch.Tensor) -> List[torch.Tensor]:
            return [self.envelope(distinct)] + self.radial_terms(distinct)

        if groups.offsets is None:  # energies only
            found = [(table, None) for table in tables(groups.distinct)]
        else:
            found = values_and_slopes(tables, groups.distinct)
        envelope = groups.gather(*found[0])
        for convolution, (table, slope) in zip(self.convolutions, found[1:]):
            x = convolution(x, receivers, senders, groups.gather(table, slope), envelope)
        return x

    def radial_terms(self, lengths: torch.Tensor) -> List[torch.Tensor]:
        """u(r) W_u + b [U, 2F] of every layer at ``lengths`` [U] (Å): what the exported model
        tabulates (``tabulated.cgcnn_radial``)."""
        rbf = self.rbf(lengths)
        return [convolution.radial(rbf) for convolution in self.convolutions]
