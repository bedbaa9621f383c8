"""Classifier-FID and nearest-neighbour distances against float64 closed forms."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from experiments.core.metrics import (Evaluator, frechet_distance, frechet_distance_from_stats, gaussian_stats,
                                 nearest_distances)

torch.set_default_dtype(torch.float32)


def _rotation(dim: int, seed: int) -> torch.Tensor:
    """A random orthogonal (dim, dim) matrix in float64."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))


def _sample(mu: torch.Tensor, cov: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    chol = torch.linalg.cholesky(cov)
    return mu + torch.randn(n, len(mu), generator=g, dtype=torch.float64) @ chol.T


def test_diagonal_gaussians_match_closed_form():
    # N(mu1, diag a) vs N(mu2, diag b): ||mu1 - mu2||^2 + sum (sqrt a - sqrt b)^2
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0, 0.5], dtype=torch.float64), torch.tensor([1.0, 1.0, 0.0, 0.0],
                                                                                         dtype=torch.float64)
    a, b = torch.tensor([1.0, 4.0, 0.25, 9.0], dtype=torch.float64), torch.tensor([4.0, 1.0, 1.0, 9.0],
                                                                                   dtype=torch.float64)
    expected = float((mu1 - mu2).pow(2).sum() + (a.sqrt() - b.sqrt()).pow(2).sum())   # 5.25 + 2.25 = 7.5
    assert expected == pytest.approx(7.5)
    got = frechet_distance_from_stats(mu1, torch.diag(a), mu2, torch.diag(b))
    assert got == pytest.approx(expected, rel=1e-10, abs=1e-10)


def test_rotated_commuting_covariances_match_closed_form():
    # S1 = Q diag(a) Q^T, S2 = Q diag(b) Q^T are non-diagonal but commute: same closed form as above
    q = _rotation(6, seed=1)
    a = torch.tensor([0.5, 1.0, 2.0, 3.0, 0.1, 5.0], dtype=torch.float64)
    b = torch.tensor([1.5, 0.2, 2.0, 1.0, 0.4, 4.0], dtype=torch.float64)
    mu1, mu2 = torch.arange(6, dtype=torch.float64), torch.ones(6, dtype=torch.float64)
    s1, s2 = q @ torch.diag(a) @ q.T, q @ torch.diag(b) @ q.T
    assert (s1 - torch.diag(torch.diagonal(s1))).abs().max() > 0.1     # really non-diagonal
    expected = float((mu1 - mu2).pow(2).sum() + (a.sqrt() - b.sqrt()).pow(2).sum())
    assert frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-9)


def test_non_commuting_2x2_matches_closed_form():
    # For 2x2 PSD M: Tr sqrt(M) = sqrt(Tr M + 2 sqrt(det M)); with M = S1^1/2 S2 S1^1/2,
    # Tr M = Tr(S1 S2) and det M = det S1 det S2.
    s1 = torch.tensor([[2.0, 0.9], [0.9, 1.0]], dtype=torch.float64)
    s2 = torch.tensor([[0.5, -0.3], [-0.3, 3.0]], dtype=torch.float64)
    assert not torch.allclose(s1 @ s2, s2 @ s1)
    mu1, mu2 = torch.tensor([0.3, -1.0], dtype=torch.float64), torch.tensor([1.0, 2.0], dtype=torch.float64)
    tr_sqrt = math.sqrt(float(torch.trace(s1 @ s2)) + 2 * math.sqrt(float(torch.det(s1) * torch.det(s2))))
    expected = float((mu1 - mu2).pow(2).sum() + torch.trace(s1) + torch.trace(s2)) - 2 * tr_sqrt
    assert frechet_distance_from_stats(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-10)


def test_from_samples_converges_to_closed_form():
    dim = 5
    q = _rotation(dim, seed=2)
    a = torch.linspace(0.5, 2.0, dim, dtype=torch.float64)
    b = torch.linspace(2.0, 0.5, dim, dtype=torch.float64)
    mu1, mu2 = torch.zeros(dim, dtype=torch.float64), torch.full((dim,), 0.5, dtype=torch.float64)
    s1, s2 = q @ torch.diag(a) @ q.T, q @ torch.diag(b) @ q.T
    expected = float((mu1 - mu2).pow(2).sum() + (a.sqrt() - b.sqrt()).pow(2).sum())
    got = frechet_distance(_sample(mu1, s1, 200_000, 3).float(), _sample(mu2, s2, 200_000, 4).float())
    assert got == pytest.approx(expected, rel=0.02)


def test_gaussian_stats_match_float64_reference():
    x = torch.randn(500, 7, generator=torch.Generator().manual_seed(5)) * 3 + 1
    mu, cov = gaussian_stats(x)
    x64 = x.double()
    assert mu.dtype == torch.float64 and cov.shape == (7, 7)
    torch.testing.assert_close(mu, x64.mean(0))
    torch.testing.assert_close(cov, torch.cov(x64.T))


def test_zero_for_a_set_against_itself_and_symmetric():
    g = torch.Generator().manual_seed(6)
    x = torch.randn(300, 16, generator=g) @ torch.randn(16, 16, generator=g)     # correlated features
    y = torch.randn(300, 16, generator=g) + 0.3
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(x, y) == pytest.approx(frechet_distance(y, x), rel=1e-6)
    assert frechet_distance(x, y) > 1.0


def test_shift_of_the_mean_adds_its_squared_length():
    x = torch.randn(400, 8, generator=torch.Generator().manual_seed(7)).double()
    shift = torch.tensor([1.0, -2.0, 0, 0, 0, 0, 0, 0.5], dtype=torch.float64)
    assert frechet_distance(x, x + shift) == pytest.approx(float(shift.pow(2).sum()), rel=1e-9)


class _Identity(nn.Module):
    """A stand-in classifier whose features are the flattened pixels (only the first 6)."""

    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(1))

    def features(self, x):
        return x.flatten(1)[:, :6]

    def forward(self, x):
        return x.flatten(1)[:, :10]


def test_evaluator_fid_of_the_reference_is_zero_and_accuracy_counts():
    images = torch.rand(200, 1, 28, 28, generator=torch.Generator().manual_seed(8))
    ev = Evaluator.build(_Identity(), images, batch=64)
    assert ev.fid(images) == pytest.approx(0.0, abs=1e-6)
    assert ev.fid(images * 0.5) > 0.01
    labels = ev.probabilities(images).argmax(1)
    assert ev.accuracy(images, labels) == 1.0
    assert ev.accuracy(images, (labels + 1) % 10) == 0.0


def test_nearest_distances_match_brute_force():
    g = torch.Generator().manual_seed(9)
    queries, reference = torch.rand(37, 1, 4, 4, generator=g), torch.rand(50, 1, 4, 4, generator=g)
    expected = torch.cdist(queries.flatten(1).double(), reference.flatten(1).double()).min(1).values
    torch.testing.assert_close(nearest_distances(queries, reference, chunk=8).double(), expected, atol=1e-4, rtol=0)
    assert float(nearest_distances(reference, reference).max()) < 1e-3        # each finds itself
    self_excluded = nearest_distances(reference, reference, chunk=16, exclude_self=True)
    assert float(self_excluded.min()) > 0.1
