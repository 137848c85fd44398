"""Triplets of directed edges and the one sum over them that GemNet's memory hangs on.

A triplet is an ordered pair of distinct edges with the same receiver: edge ``into`` (i <- j)
takes a message from edge ``source`` (i <- k), with the angle between them at atom i. They are
compared by edge id, not by atom, so two periodic images of one neighbour are two edges and
make a triplet. A dense metal has ~1,700 of them per atom within 5 Å; GemNet's triplet work is
one contraction over them,

    S[e, s, t] = sum over triplets k into edge e of  Y[k, s] * x[source_k, t]      (``triplet_sum``)

with Y [T, S] the angular basis of each triplet and x [E_t, F] the source edges' features.
Done in one go, the per-triplet product [T, S, F] is the largest tensor of the model (and
autograd keeps it for the force backward and the double backward of force training). Here it
only ever exists a chunk at a time: each sum runs over chunks of ``chunk`` triplets, and its
derivatives are two more sums of the same kind (``triplet_spread``, ``triplet_dot``), each
chunked too, whose derivatives are again these three. Autograd then keeps only their inputs,
edge- and triplet-sized ([E_t, S, F], [T, S]), at any order of differentiation, so peak memory
is linear in the number of triplets with a small slope, plus one chunk (``GemNet``'s memory
budget sets ``chunk``).

TorchScript has no custom autograd functions, so the exported model runs the plain chunked
sum (``chunked_triplet_sum``), for which autograd keeps each chunk's gathered [chunk, F]
features: fine for inference (one backward), where nothing is differentiated twice.
"""
from __future__ import annotations

from typing import Tuple

import torch


def triplet_index(receivers: torch.Tensor, num_nodes: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """(into [T], source [T]): positions in ``receivers`` [E] of every ordered pair of distinct
    edges with the same receiver, grouped by receiver. Σ c_i (c_i - 1) triplets for c_i edges
    into node i."""
    order = torch.sort(receivers, stable=True)[1]
    counts = torch.bincount(receivers, minlength=num_nodes)  # [N]
    group_start = torch.cumsum(counts, 0) - counts  # [N] first sorted position of each group
    sorted_receivers = receivers.index_select(0, order)
    group_size = counts.index_select(0, sorted_receivers)  # [E] in sorted order
    total = int(group_size.sum())
    # Sorted edge p is paired with every position of its group: p repeated c times, and
    # group_start + 0..c-1 beside it.
    pair_owner = torch.repeat_interleave(torch.arange(order.shape[0], device=receivers.device), group_size)
    block_start = torch.cumsum(group_size, 0) - group_size
    within = torch.arange(total, device=receivers.device) - block_start.index_select(0, pair_owner)
    partner = group_start.index_select(0, sorted_receivers.index_select(0, pair_owner)) + within
    distinct = partner != pair_owner
    return order.index_select(0, pair_owner[distinct]), order.index_select(0, partner[distinct])


def chunked_triplet_sum(x: torch.Tensor, basis: torch.Tensor, into: torch.Tensor, source: torch.Tensor,
                        num_edges: int, chunk: int) -> torch.Tensor:
    """S [num_edges, S, F] = Σ_k basis[k, :, None] * x[source_k, None, :] into row into_k, in
    chunks of ``chunk`` triplets; plain differentiable ops (the TorchScript path)."""
    out = torch.zeros((num_edges, basis.shape[1], x.shape[1]), dtype=x.dtype, device=x.device)
    for start in range(0, into.shape[0], chunk):
        rows = into[start:start + chunk]
        products = basis[start:start + chunk].unsqueeze(2) * x.index_select(0, source[start:start + chunk]).unsqueeze(1)
        # In place: nothing saves ``out`` for the backward, and a copy per chunk would cost
        # a pass over [num_edges, S, F] each time.
        out.index_add_(0, rows, products)
    return out


def _spread(grad: torch.Tensor, basis: torch.Tensor, into: torch.Tensor, source: torch.Tensor,
            num_sources: int, chunk: int) -> torch.Tensor:
    """[num_sources, F] = Σ_k Σ_s basis[k, s] grad[into_k, s, :] into row source_k."""
    out = torch.zeros((num_sources, grad.shape[2]), dtype=grad.dtype, device=grad.device)
    for start in range(0, into.shape[0], chunk):
        gathered = grad.index_select(0, into[start:start + chunk])  # [c, S, F]
        weighted = torch.bmm(basis[start:start + chunk].unsqueeze(1), gathered).squeeze(1)  # [c, F]
        out.index_add_(0, source[start:start + chunk], weighted)
    return out


def _dot(grad: torch.Tensor, x: torch.Tensor, into: torch.Tensor, source: torch.Tensor, chunk: int) -> torch.Tensor:
    """[T, S] = Σ_f grad[into_k, s, f] x[source_k, f]."""
    pieces = []
    for start in range(0, into.shape[0], chunk):
        gathered = grad.index_select(0, into[start:start + chunk])  # [c, S, F]
        features = x.index_select(0, source[start:start + chunk]).unsqueeze(2)  # [c, F, 1]
        pieces.append(torch.bmm(gathered, features).squeeze(2))
    if not pieces:
        return torch.zeros((0, grad.shape[1]), dtype=grad.dtype, device=grad.device)
    return torch.cat(pieces)


class _TripletSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, basis, into, source, num_edges, chunk):
        ctx.save_for_backward(x, basis, into, source)
        ctx.chunk = chunk
        return chunked_triplet_sum(x, basis, into, source, num_edges, chunk)

    @staticmethod
    def backward(ctx, grad):
        x, basis, into, source = ctx.saved_tensors
        grad_x = _TripletSpread.apply(grad, basis, into, source, x.shape[0], ctx.chunk) \
            if ctx.needs_input_grad[0] else None
        grad_basis = _TripletDot.apply(grad, x, into, source, ctx.chunk) if ctx.needs_input_grad[1] else None
        return grad_x, grad_basis, None, None, None, None


class _TripletSpread(torch.autograd.Function):
    """The adjoint of the sum in x."""

    @staticmethod
    def forward(ctx, grad, basis, into, source, num_sources, chunk):
        ctx.save_for_backward(grad, basis, into, source)
        ctx.chunk = chunk
        return _spread(grad, basis, into, source, num_sources, chunk)

    @staticmethod
    def backward(ctx, upstream):
        grad, basis, into, source = ctx.saved_tensors
        grad_grad = _TripletSum.apply(upstream, basis, into, source, grad.shape[0], ctx.chunk) \
            if ctx.needs_input_grad[0] else None
        grad_basis = _TripletDot.apply(grad, upstream, into, source, ctx.chunk) if ctx.needs_input_grad[1] else None
        return grad_grad, grad_basis, None, None, None, None


class _TripletDot(torch.autograd.Function):
    """The adjoint of the sum in the basis."""

    @staticmethod
    def forward(ctx, grad, x, into, source, chunk):
        ctx.save_for_backward(grad, x, into, source)
        ctx.chunk = chunk
        return _dot(grad, x, into, source, chunk)

    @staticmethod
    def backward(ctx, upstream):
        grad, x, into, source = ctx.saved_tensors
        grad_grad = _TripletSum.apply(x, upstream, into, source, grad.shape[0], ctx.chunk) \
            if ctx.needs_input_grad[0] else None
        grad_x = _TripletSpread.apply(grad, upstream, into, source, x.shape[0], ctx.chunk) \
            if ctx.needs_input_grad[1] else None
        return grad_grad, grad_x, None, None, None


def triplet_sum(x: torch.Tensor, basis: torch.Tensor, into: torch.Tensor, source: torch.Tensor,
                num_edges: int, chunk: int) -> torch.Tensor:
    """``chunked_triplet_sum`` whose derivatives of every order are chunked sums too, so that
    autograd keeps no per-triplet [T, S, F] tensor (eager mode only)."""
    return _TripletSum.apply(x, basis, into, source, num_edges, chunk)
