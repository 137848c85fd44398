"""Functions of the edge length as tables: the inference models ``eipnn-export`` writes (issue 17).

Every SchNet interaction's filter W(r) = filter_net(rbf(r)) * envelope(r) is a function of
the edge length alone, and evaluating it (two dense layers over every edge, and their
backward for the forces) was most of an MD step; SOAP's radial functions (GTO overlaps
times the switch) are too. The exported model replaces them by quintic Hermite splines on
a uniform grid of knots 0, h, 2h, ..., r_c: at each knot the spline takes the function's
value, slope and curvature (exact, by forward-mode differentiation), so it and its first
two derivatives are continuous everywhere (MD conserves the spline's energy as it would
the network's; force constants have no jumps); a function that vanishes at r_c with its
slope (SchNet's enveloped filters, SOAP's switched radial part) does so in the table too.
The grid is the coarsest of 2^-4 Å / 2^j on which the values and slopes, checked between
the knots, are within ``TOLERANCE`` of the exact ones (relative to their largest values):
the error of a quintic spline falls as h^6 in value and h^5 in slope. docs/benchmarks.md
("Tabulated filters") gives the grids and the measured energy and force differences on the
si-pbe test split; ``eipnn-export --exact`` writes the networks as trained instead.
"""
from __future__ import annotations

import copy
import math
from typing import Callable, List, Optional, Tuple

import torch
from torch import nn

from .cgcnn import CGCNN
from .schnet import SchNet, leading_rows
from .soap import SOAP
from .soapnet import SOAPNet

# Functions of the edge length to tabulate: lengths [U] (Å) -> one [U, F] tensor per table
# layer (SchNet: per interaction; SOAP: one, its L n radial functions).
RadialFunctions = Callable[[torch.Tensor], Tuple[torch.Tensor, ...]]

# Largest relative difference of the tabulated W and dW/dr from the network's, between the
# knots. 1e-6 in dW/dr gave forces within 3e-7 eV/Å of the network's on rattled, strained
# and defective Si (paper-size SchNets, forces of a few eV/Å): 30x inside issue 17's 1e-5.
TOLERANCE = 1e-6
# Grids tried, coarsest first: 2^-4, 2^-5, ... Å. A power of two makes every knot r_k = k h
# and every r / h exact in floating point, so the fraction t within an interval carries no
# rounding of its own in float32 (only the length's); for a cutoff that is not a multiple of
# h, h is shrunk to r_c / ceil(r_c / h) so that the last knot is r_c.
COARSEST_SPACING_ANGSTROM = 2.0**-4
HALVINGS = 7  # the finest grid tried: 2^-11 Å = 0.0005 Å
INSET_ANGSTROM = 1e-5  # FilterTable.of: where the end knots are evaluated


class TableAccuracyError(ValueError):
    """No grid up to the finest tried tabulates the filters within the tolerance."""


def schnet_filters(schnet: SchNet) -> RadialFunctions:
    """Every interaction's W(r) [U, F], computed in float64."""
    exact = copy.deepcopy(schnet).to(torch.float64)

    def filters(r: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        rbf, envelope = exact.rbf(r), exact.envelope(r)
        return tuple(interaction.filter_table(rbf, envelope) for interaction in exact.interactions)

    return filters


def soap_radial(soap: SOAP) -> RadialFunctions:
    """SOAP's radial functions [U, L n] (``SOAP.radial`` flattened), computed in float64."""
    exact = copy.deepcopy(soap).to(torch.float64)
    return lambda r: (exact.radial(r).reshape(r.shape[0], -1),)


def cgcnn_radial(cgcnn: CGCNN) -> RadialFunctions:
    """Every CGCNN layer's radial term u(r) W_u + b [U, 2F], computed in float64."""
    exact = copy.deepcopy(cgcnn).to(torch.float64)
    return lambda r: tuple(exact.radial_terms(r))


def derivatives(functions: RadialFunctions, lengths: torch.Tensor) -> List[Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(f, df/dr, d2f/dr2) [U, F] of every layer of ``functions`` at ``lengths`` [U] (Å), by
    forward-mode differentiation (nested), each length on its own (a length's values depend
    on it alone)."""
    ones = torch.ones_like(lengths)

    def slopes(r: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return torch.func.jvp(functions, (r,), (ones,))[1]

    with torch.no_grad():
        values, first = torch.func.jvp(functions, (lengths,), (ones,))
        second = torch.func.jvp(slopes, (lengths,), (ones,))[1]
    return list(zip(values, first, second))


class FilterTable(nn.Module):
    """W_l(r) of every layer l as quintic Hermite splines on knots r_k = k h, k = 0..K-1,
    h = r_c / (K - 1). ``rows`` [L, 4K, F] holds, per layer and knot, in four blocks of K
    rows: W(r_k); the difference W(r_k+1) - W(r_k) (0 for the last knot); h dW/dr(r_k);
    h^2 d2W/dr2(r_k); all computed in float64.

    In interval k at fraction t, W = W_k + H5 (W_k+1 - W_k) + H1 h W'_k + H4 h W'_k+1
    + H2 h^2 W''_k + H3 h^2 W''_k+1 with the quintic Hermite basis H (``locate``), which is
    the usual six-term form with H0 + H5 = 1 used: written with the difference of the knot
    values, its slope by t is a sum of terms of size h W' and not a difference of values of
    size W, which in float32 would lose the slope to rounding the more, the finer the grid.
    An edge's filter is a weighted sum of six rows, which ``embedding_bag`` computes in one
    pass over the edges; its derivative by the weights (by the length: the forces) also."""

    def __init__(self, rows: torch.Tensor, spacing_angstrom: float) -> None:
        super().__init__()
        self.register_buffer("rows", rows)
        self.spacing = float(spacing_angstrom)
        self.num_knots = int(rows.shape[1] // 4)

    @staticmethod
    def of(functions: RadialFunctions, cutoff_angstrom: float, spacing_angstrom: float,
           vanishes_at_cutoff: bool = True) -> "FilterTable":
        """The table of ``functions`` (float64) on knots at most ``spacing_angstrom`` apart.
        ``vanishes_at_cutoff``: the functions and their slopes are 0 at r_c (an envelope or
        a switch), and so are the table's last knots, exactly."""
        intervals = max(1, math.ceil(cutoff_angstrom / spacing_angstrom - 1e-9))
        spacing = cutoff_angstrom / intervals  # so that the last knot is exactly r_c
        if math.isclose(spacing, spacing_angstrom, rel_tol=1e-9):
            spacing = spacing_angstrom  # r_c a multiple: keep h as given (a power of two stays one)
        radii = torch.arange(intervals + 1, dtype=torch.float64) * spacing
        # The end knots are evaluated INSET Å inside and carried back by Taylor's formula:
        # forward-mode derivatives at r = 0 are wrong where a basis has a removable
        # singularity there (sinc: a second derivative of 0), and at r_c an envelope's mask
        # gives the derivatives from outside (0), where the limits from inside are wanted
        # (the curvature need not be 0 there: cosine).
        radii[0], radii[-1] = INSET_ANGSTROM, cutoff_angstrom - INSET_ANGSTROM
        layers = []
        for value, slope, curvature in derivatives(functions, radii):
            value[0] -= INSET_ANGSTROM * slope[0] - 0.5 * INSET_ANGSTROM**2 * curvature[0]
            slope[0] -= INSET_ANGSTROM * curvature[0]
            if vanishes_at_cutoff:
                value[-1] = 0.0
                slope[-1] = 0.0
            else:
                value[-1] += INSET_ANGSTROM * slope[-1] + 0.5 * INSET_ANGSTROM**2 * curvature[-1]
                slope[-1] += INSET_ANGSTROM * curvature[-1]
            difference = torch.cat([value[1:] - value[:-1], torch.zeros_like(value[:1])])
            layers.append(torch.cat([value, difference, spacing * slope, spacing**2 * curvature]))
        return FilterTable(torch.stack(layers), spacing)

    @staticmethod
    def accurate(functions: RadialFunctions, cutoff_angstrom: float, vanishes_at_cutoff: bool = True,
                 tolerance: float = TOLERANCE) -> "FilterTable":
        """The table on the coarsest grid, 2^-4 Å / 2^j, that is within ``tolerance``."""
        worst = math.inf
        for halving in range(HALVINGS + 1):
            table = FilterTable.of(functions, cutoff_angstrom, COARSEST_SPACING_ANGSTROM / 2**halving,
                                   vanishes_at_cutoff)
            worst = table.largest_relative_error(functions)
            if worst <= tolerance:
                return table
        raise TableAccuracyError(
            f"these functions of the edge length vary too fast to tabulate: on knots {table.spacing:.2g} Å "
            f"apart they are off by {worst:.2g} of their scale (tolerance {tolerance:.0e}); export the "
            "model with exact=True (eipnn-export --exact)")

    def largest_relative_error(self, functions: RadialFunctions) -> float:
        """The largest difference of the table's values and slopes from those of
        ``functions``, at 1/4, 1/2 and 3/4 of every interval, relative to the largest
        |f| and |df/dr| of each layer."""
        fractions = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64)
        r = ((torch.arange(self.num_knots - 1, dtype=torch.float64)[:, None] + fractions) * self.spacing).reshape(-1)
        table = copy.deepcopy(self).to(torch.float64)
        step = 1e-6  # Å: the spline's slope by central differences, to ~1e-10 of its scale
        worst = 0.0
        with torch.no_grad():
            for layer, (value, slope, _) in enumerate(derivatives(functions, r)):
                spline = table.filters(layer, *table.locate(r))
                spline_slope = (table.filters(layer, *table.locate(r + step))
                                - table.filters(layer, *table.locate(r - step))) / (2 * step)
                worst = max(worst, float((spline - value).abs().max() / value.abs().max()),
                            float((spline_slope - slope).abs().max() / slope.abs().max()))
        return worst

    def locate(self, lengths: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The six rows of each length's filter [E, 6] and their weights [E, 6], functions of
        the length that autograd follows. The weights are the basis at the detached fraction
        t0 plus its slope times (t - t0), which is 0 in value and 1 in derivative: so autograd
        takes the slope in the factored forms below, where differentiating the polynomials
        would subtract terms up to 60 to get values near 0 (2e-6 of rounding in float32,
        which the forces would carry)."""
        position = lengths / self.spacing
        interval = position.detach().floor().clamp(0, self.num_knots - 2).to(torch.int64)
        t = position - interval.to(lengths.dtype)
        t0 = t.detach()
        s = 1.0 - t0
        t2, s2 = t0 * t0, s * s
        values = torch.stack([
            torch.ones_like(t0),
            t2 * t0 * (10.0 - 15.0 * t0 + 6.0 * t2),  # H5, of W_k+1 - W_k
            t0 * s2 * s * (1.0 + 3.0 * t0),  # H1, of h W'_k
            -t2 * t0 * s * (4.0 - 3.0 * t0),  # H4, of h W'_k+1
            0.5 * t2 * s2 * s,  # H2, of h^2 W''_k
            0.5 * t2 * t0 * s2,  # H3, of h^2 W''_k+1
        ], dim=1)
        slopes = torch.stack([
            torch.zeros_like(t0),
            30.0 * t2 * s2,
            s2 * (1.0 + 2.0 * t0 - 15.0 * t2),
            t2 * (6.0 - 5.0 * t0) * (3.0 * t0 - 2.0),
            0.5 * t0 * s2 * (2.0 - 5.0 * t0),
            0.5 * t2 * s * (3.0 - 5.0 * t0),
        ], dim=1)
        weights = values + slopes * (t - t0).unsqueeze(1)
        k = self.num_knots
        rows = torch.stack([interval, interval + k, interval + 2 * k, interval + 2 * k + 1,
                            interval + 3 * k, interval + 3 * k + 1], dim=1)
        return rows, weights

    def locate_chunks(self, chunks: List[torch.Tensor]) -> Tuple[List[torch.Tensor], List[torch.Tensor]]:
        """``locate`` of every chunk of edge lengths: (rows, weights), one of each per chunk."""
        rows: List[torch.Tensor] = []
        weights: List[torch.Tensor] = []
        for chunk in chunks:
            chunk_rows, chunk_weights = self.locate(chunk)
            rows.append(chunk_rows)
            weights.append(chunk_weights)
        return rows, weights

    def layer_values(self, layer: int, rows: List[torch.Tensor], weights: List[torch.Tensor],
                     count: Optional[int] = None) -> List[torch.Tensor]:
        """Layer ``layer``'s values at the edges of every chunk, or of the first ``count``
        edges only (the KIM driver's pruned layers)."""
        if count is not None:
            rows, weights = leading_rows(rows, count), leading_rows(weights, count)
        return [self.filters(layer, rows[k], weights[k]) for k in range(len(rows))]

    def filters(self, layer: int, rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """W_layer [E, F] at the edges ``locate`` placed."""
        return nn.functional.embedding_bag(rows, self.rows[layer], per_sample_weights=weights, mode="sum")


class TabulatedSchNet(nn.Module):
    """``SchNet``'s forward with every filter read from a ``FilterTable``: same inputs, same
    outputs to the table's accuracy. Built from a trained SchNet; it carries no filter
    networks (their ``filter_net`` is replaced by an empty module, the table holds them)."""

    def __init__(self, schnet: SchNet, cutoff_angstrom: float, spacing_angstrom: Optional[float] = None) -> None:
        """``spacing_angstrom``: the knots' spacing; None: the coarsest grid within ``TOLERANCE``."""
        super().__init__()
        self.table = _table(schnet_filters(schnet), cutoff_angstrom, spacing_angstrom, True).to(
            schnet.embedding.weight.dtype)
        self.num_layers = schnet.num_layers
        self.num_features = schnet.num_features
        self.edge_chunk = schnet.edge_chunk
        self.embedding = copy.deepcopy(schnet.embedding)
        self.interactions = copy.deepcopy(schnet.interactions)
        for interaction in self.interactions:
            interaction.filter_net = nn.Identity()

    def forward(
        self,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        vectors: torch.Tensor,
        lengths: torch.Tensor,
        layer_edges: Optional[List[int]] = None,
    ) -> torch.Tensor:
        x = self.embedding(species)
        rows, weights = self.table.locate_chunks(list(lengths.split(self.edge_chunk)))
        receivers = list(edge_index[0].split(self.edge_chunk))
        senders = list(edge_index[1].split(self.edge_chunk))
        for layer, interaction in enumerate(self.interactions):
            layer_receivers, layer_senders = receivers, senders
            count: Optional[int] = None
            if layer_edges is not None:
                count = layer_edges[layer]
                layer_receivers, layer_senders = leading_rows(receivers, count), leading_rows(senders, count)
            filters = self.table.layer_values(layer, rows, weights, count)
            x = interaction.convolve(x, layer_receivers, layer_senders, filters)
        return x


class TabulatedCGCNN(nn.Module):
    """``CGCNN``'s forward with every layer's radial term read from a ``FilterTable`` (the
    term has its bias, so it does not vanish at the cutoff; the envelope still multiplies each
    message). Built from a trained CGCNN; its layers keep no radial Linear (the table has them)."""

    def __init__(self, cgcnn: CGCNN, cutoff_angstrom: float, spacing_angstrom: Optional[float] = None) -> None:
        super().__init__()
        self.table = _table(cgcnn_radial(cgcnn), cutoff_angstrom, spacing_angstrom, False).to(
            cgcnn.embedding.weight.dtype)
        self.num_layers = cgcnn.num_layers
        self.num_features = cgcnn.num_features
        self.edge_chunk = cgcnn.edge_chunk
        self.embedding = copy.deepcopy(cgcnn.embedding)
        self.envelope = copy.deepcopy(cgcnn.envelope)
        self.convolutions = copy.deepcopy(cgcnn.convolutions)
        for convolution in self.convolutions:
            convolution.radial = nn.Identity()

    def forward(
        self,
        species: torch.Tensor,
        edge_index: torch.Tensor,
        vectors: torch.Tensor,
        lengths: torch.Tensor,
        layer_edges: Optional[List[int]] = None,
    ) -> torch.Tensor:
        x = self.embedding(species)
        chunks = list(lengths.split(self.edge_chunk))
        rows, weights = self.table.locate_chunks(chunks)
        envelope = [self.envelope(chunk) for chunk in chunks]
        receivers = list(edge_index[0].split(self.edge_chunk))
        senders = list(edge_index[1].split(self.edge_chunk))
        for layer, convolution in enumerate(self.convolutions):
            count = None if layer_edges is None else layer_edges[layer]
            radial = self.table.layer_values(layer, rows, weights, count)
            x = convolution(x, receivers, senders, radial, envelope, count)
        return x


class TabulatedSOAP(SOAP):
    """``SOAP`` with its radial functions read from a ``FilterTable`` (one layer of L n
    functions): the same settings and buffers, the same descriptor to the table's accuracy."""

    def __init__(self, soap: SOAP, spacing_angstrom: Optional[float] = None) -> None:
        super().__init__(soap.num_species, soap.r_cut, soap.n_max, soap.l_max, soap.sigma, soap.cutoff,
                         soap.smooth_cutoff, soap.smooth_width)
        self.load_state_dict(soap.state_dict())
        self.to(soap.exponents.dtype)
        self.table = _table(soap_radial(soap), soap.cutoff, spacing_angstrom, soap.smooth_cutoff).to(
            soap.exponents.dtype)

    def radial(self, lengths: torch.Tensor) -> torch.Tensor:
        values = self.table.filters(0, *self.table.locate(lengths))  # [E, L n]
        return values.view(lengths.shape[0], self.l_max + 1, self.n_max)


def _table(functions: RadialFunctions, cutoff_angstrom: float, spacing_angstrom: Optional[float],
           vanishes_at_cutoff: bool) -> FilterTable:
    """On knots ``spacing_angstrom`` apart, or None: the coarsest grid within ``TOLERANCE``."""
    if spacing_angstrom is None:
        return FilterTable.accurate(functions, cutoff_angstrom, vanishes_at_cutoff)
    return FilterTable.of(functions, cutoff_angstrom, spacing_angstrom, vanishes_at_cutoff)


def tabulated(representation: nn.Module, cutoff_angstrom: float, spacing_angstrom: Optional[float] = None) -> nn.Module:
    """The inference form of ``representation``: SchNet's filters, CGCNN's radial terms or
    SOAPNet's radial functions tabulated, any other model as it is."""
    if isinstance(representation, SchNet):
        return TabulatedSchNet(representation, cutoff_angstrom, spacing_angstrom)
    if isinstance(representation, CGCNN):
        return TabulatedCGCNN(representation, cutoff_angstrom, spacing_angstrom)
    if isinstance(representation, SOAPNet):
        inference = copy.deepcopy(representation)
        inference.soap = TabulatedSOAP(representation.soap, spacing_angstrom)
        return inference
    return representation


def table_of(representation: nn.Module) -> Optional[FilterTable]:
    """The table of a ``tabulated`` representation, or None."""
    if isinstance(representation, (TabulatedSchNet, TabulatedCGCNN)):
        return representation.table
    if isinstance(representation, SOAPNet) and isinstance(representation.soap, TabulatedSOAP):
        return representation.soap.table
    return None
