"""models/triplets.py: the triplet index and the chunked triplet sum whose derivatives of
every order are chunked sums too."""
from __future__ import annotations

import itertools

import pytest
import torch

from eipnn_training.models.triplets import chunked_triplet_sum, triplet_index, triplet_sum


def test_every_ordered_pair_of_distinct_edges_into_one_atom_once():
    receivers = torch.tensor([2, 0, 2, 1, 2, 0, 3])  # node 3 alone: no triplet; node 1 alone too
    into, source = triplet_index(receivers, 5)
    found = sorted(zip(into.tolist(), source.tolist()))
    expected = sorted((a, b) for a, b in itertools.permutations(range(7), 2) if receivers[a] == receivers[b])
    assert found == expected  # 3 * 2 for node 2, 2 * 1 for node 0
    assert triplet_index(torch.zeros(0, dtype=torch.int64), 3)[0].numel() == 0


def test_two_images_of_one_neighbour_are_two_edges():
    """Edges are compared by id: two edges 0 <- 1 (different periodic images) form a triplet."""
    into, source = triplet_index(torch.tensor([0, 0]), 2)
    assert sorted(zip(into.tolist(), source.tolist())) == [(0, 1), (1, 0)]


def _problem(seed: int, edges: int = 9, triplets: int = 40, spherical: int = 3, features: int = 4):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(edges, features, dtype=torch.float64, generator=generator, requires_grad=True)
    basis = torch.randn(triplets, spherical, dtype=torch.float64, generator=generator, requires_grad=True)
    into = torch.randint(0, edges, (triplets,), generator=generator)
    source = torch.randint(0, edges, (triplets,), generator=generator)
    return x, basis, into, source


def _dense(x, basis, into, source, edges):
    """The same sum with the whole [T, S, F] product at once."""
    products = basis.unsqueeze(2) * x[source].unsqueeze(1)
    return torch.zeros(edges, basis.shape[1], x.shape[1], dtype=x.dtype).index_add(0, into, products)


@pytest.mark.parametrize("chunk", [1, 7, 40, 1000])
def test_the_chunked_sums_equal_the_whole_product(chunk):
    x, basis, into, source = _problem(0)
    reference = _dense(x, basis, into, source, 9)
    torch.testing.assert_close(chunked_triplet_sum(x, basis, into, source, 9, chunk), reference)
    torch.testing.assert_close(triplet_sum(x, basis, into, source, 9, chunk), reference)


def test_first_and_second_derivatives_are_exact():
    """gradcheck and gradgradcheck of the bounded sum (its backward is two more chunked sums,
    whose backward are these three again)."""
    x, basis, into, source = _problem(1)
    function = lambda a, b: triplet_sum(a, b, into, source, 9, 7)  # noqa: E731
    assert torch.autograd.gradcheck(function, (x, basis))
    assert torch.autograd.gradgradcheck(function, (x, basis))


def test_a_double_backward_equals_the_whole_products():
    """A force-training-like second derivative: d/dw of |d(sum)/dbasis|^2 through both."""
    x, basis, into, source = _problem(2)
    weight = torch.randn(9, 3, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3))

    def second(sum_of):
        energy = (sum_of(x, basis) * weight).sum()
        (grad_basis,) = torch.autograd.grad(energy, basis, create_graph=True)
        return torch.autograd.grad((grad_basis**2).sum(), x)[0]

    torch.testing.assert_close(second(lambda a, b: triplet_sum(a, b, into, source, 9, 5)),
                               second(lambda a, b: _dense(a, b, into, source, 9)))
