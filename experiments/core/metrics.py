"""Numbers for generated digits: classifier-FID, class accuracy, nearest-neighbour distances, PSNR.

The Frechet distance is computed in float64 on the CPU from feature means and covariances:
FID = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


def gaussian_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, F) -> mean (F,) and unbiased covariance (F, F), float64."""
    f = features.detach().to("cpu", torch.float64)
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / max(f.shape[0] - 1, 1)


def _sqrtm_psd(m: torch.Tensor) -> torch.Tensor:
    vals, vecs = torch.linalg.eigh((m + m.T) / 2)
    return (vecs * vals.clamp(min=0).sqrt()) @ vecs.T


def frechet_distance_from_stats(mu_a, cov_a, mu_b, cov_b) -> float:
    root_a = _sqrtm_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    tr_covmean = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp(min=0).sqrt().sum()
    value = (mu_a - mu_b).pow(2).sum() + torch.trace(cov_a) + torch.trace(cov_b) - 2 * tr_covmean
    return float(value.clamp(min=0))


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Frechet distance between Gaussians fitted to two (N, F) feature sets."""
    return frechet_distance_from_stats(*gaussian_stats(features_a), *gaussian_stats(features_b))


def psnr(estimate: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB for images in [0, 1]: (B, ...) -> (B,)."""
    mse = (estimate.float().clamp(0, 1) - clean.float()).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp(min=1e-10))


def nearest_distances(queries: torch.Tensor, reference: torch.Tensor, chunk: int = 1024,
                      exclude_self: bool = False) -> torch.Tensor:
    """L2 distance (in pixel space) from each query image to its nearest reference image: (Q,)."""
    ref = reference.flatten(1).float()
    ref_sq = ref.pow(2).sum(1)
    out = []
    for start in range(0, queries.shape[0], chunk):
        q = queries[start:start + chunk].flatten(1).float().to(ref.device)
        d2 = q.pow(2).sum(1, keepdim=True) + ref_sq[None] - 2 * q @ ref.T        # (q, R)
        if exclude_self:
            idx = torch.arange(start, start + q.shape[0], device=ref.device)
            d2[torch.arange(q.shape[0], device=ref.device), idx] = float("inf")
        out.append(d2.clamp(min=0).min(1).values.sqrt())
    return torch.cat(out)


def memorisation(sample_near: torch.Tensor, test_near: torch.Tensor) -> tuple[float, float, float]:
    """From nearest-training-digit distances of samples and of test digits: (median ratio samples /
    test, the test 1st percentile, share of samples nearer than it). Unseen digits give ~1 and 1%."""
    close = float(test_near.quantile(0.01))          # nearer than 99% of never-seen digits: suspicious
    ratio = float(sample_near.median() / test_near.median())
    return ratio, close, float((sample_near < close).float().mean())


@dataclass
class Evaluator:
    """The trained classifier plus cached test-split features: FID and accuracy of any image batch."""

    classifier: nn.Module
    test_mu: torch.Tensor
    test_cov: torch.Tensor
    batch: int = 2000

    @classmethod
    def build(cls, classifier: nn.Module, test_images: torch.Tensor, batch: int = 2000) -> "Evaluator":
        classifier.eval()
        ev = cls(classifier, torch.zeros(0), torch.zeros(0), batch)
        ev.test_mu, ev.test_cov = gaussian_stats(ev.features(test_images))
        return ev

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        device = next(self.classifier.parameters()).device
        return torch.cat([self.classifier.features(c.to(device).float().clamp(0, 1)).float()
                          for c in images.split(self.batch)])

    @torch.no_grad()
    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) -> (N, 10) softmax; images are clipped to [0, 1] as for display."""
        device = next(self.classifier.parameters()).device
        return torch.cat([self.classifier(c.to(device).float().clamp(0, 1)).float().softmax(1)
                          for c in images.split(self.batch)])

    def accuracy(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """Fraction of images the classifier assigns to `labels`."""
        pred = self.probabilities(images).argmax(1).cpu()
        return float((pred == labels.cpu()).float().mean())

    def fid(self, images: torch.Tensor) -> float:
        """Classifier-FID of images against the test split."""
        mu, cov = gaussian_stats(self.features(images))
        return frechet_distance_from_stats(mu, cov, self.test_mu, self.test_cov)
