"""Tests for gan_jax.metrics (pure numpy metric math)."""

import os
import sys

import numpy as np
import pytest
import scipy.linalg
from scipy.spatial.distance import cdist
from scipy.stats import entropy

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _ROOT not in sys.path:  # allow running without installing the package
  sys.path.insert(0, _ROOT)

from gan_jax import metrics  # noqa: E402
from gan_jax.metrics import class_accuracy  # noqa: E402
from gan_jax.metrics import density_coverage  # noqa: E402
from gan_jax.metrics import feature_statistics  # noqa: E402
from gan_jax.metrics import fid  # noqa: E402
from gan_jax.metrics import frechet_distance  # noqa: E402
from gan_jax.metrics import inception_score  # noqa: E402
from gan_jax.metrics import kid  # noqa: E402
from gan_jax.metrics import precision_recall  # noqa: E402
from gan_jax.metrics import summary  # noqa: E402

# ---------------------------------------------------------------------------
# synthetic feature distributions
# ---------------------------------------------------------------------------


def _make_mixture(rng, num_clusters=8, dim=32, latent=4):
  """Mixture of clusters, each a random 4-d linear 'sheet' in 32-d."""
  centers = rng.normal(size=(num_clusters, dim)) * 3.0
  maps = rng.normal(size=(num_clusters, latent, dim)) / np.sqrt(latent)
  return centers, maps


def _sample_mixture(rng, dist, n, floor=0.05):
  centers, maps = dist
  idx = rng.integers(len(centers), size=n)
  z = rng.normal(size=(n, maps.shape[1]))
  x = centers[idx] + np.einsum('nl,nld->nd', z, maps[idx])
  return x + floor * rng.normal(size=x.shape)


def _clusters(rng, centers, n_per, proj):
  """Clear, well separated clusters: 2-d Gaussian blobs embedded in R^d."""
  return np.concatenate([c + rng.normal(size=(n_per, proj.shape[0])) @ proj for c in centers])


def _reference_fid(a, b):
  """Textbook FID (as in pytorch-fid) with scipy.linalg.sqrtm."""
  mu1, mu2 = a.mean(0), b.mean(0)
  s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  covmean = np.real(covmean)
  diff = mu1 - mu2
  return diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)


# ---------------------------------------------------------------------------
# FID
# ---------------------------------------------------------------------------


def test_feature_statistics_matches_numpy():
  x = np.random.default_rng(0).normal(size=(50, 6)).astype(np.float32)
  mu, sigma = feature_statistics(x)
  assert mu.dtype == np.float64 and sigma.dtype == np.float64
  np.testing.assert_allclose(mu, x.astype(np.float64).mean(0), rtol=1e-12)
  np.testing.assert_allclose(sigma, np.cov(x.astype(np.float64), rowvar=False), rtol=1e-12)


def test_fid_self_is_zero():
  rng = np.random.default_rng(1)
  x = _sample_mixture(rng, _make_mixture(rng), 2000)
  scale = np.trace(np.cov(x, rowvar=False))
  value = fid(x, x)
  assert 0.0 <= value < 1e-6 * scale


def test_fid_matches_scipy_sqrtm():
  rng = np.random.default_rng(2)
  a = rng.normal(size=(500, 16)) @ rng.normal(size=(16, 16)) + 0.5
  b = rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16)) - 0.3
  ours = fid(a, b)
  ref = _reference_fid(a, b)
  assert ours > 0
  assert abs(ours - ref) <= 1e-6 * abs(ref)


def test_frechet_distance_closed_form_diagonal():
  # For commuting (diagonal) covariances: sum (sqrt(a) - sqrt(b))^2.
  rng = np.random.default_rng(3)
  va, vb = rng.uniform(0.1, 5.0, size=10), rng.uniform(0.1, 5.0, size=10)
  mu1, mu2 = rng.normal(size=10), rng.normal(size=10)
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(va) - np.sqrt(vb)) ** 2)
  got = frechet_distance(mu1, np.diag(va), mu2, np.diag(vb))
  assert got == pytest.approx(expected, rel=1e-10)


def test_fid_singular_covariance():
  # n < d: both covariances are rank deficient.
  rng = np.random.default_rng(4)
  d = 64
  a = rng.normal(size=(10, d))
  b = rng.normal(size=(12, d)) * 1.5 + 0.2
  value = fid(a, b)
  assert np.isfinite(value) and value >= 0.0
  # Independent exact reference: tr sqrt(S1 S2) = nuclear norm of
  # Xc Yc^T / sqrt((n1 - 1)(n2 - 1)) for centred data matrices.
  xc, yc = a - a.mean(0), b - b.mean(0)
  tr_sqrt = np.linalg.svd(xc @ yc.T, compute_uv=False).sum() / np.sqrt(9 * 11)
  s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  diff = a.mean(0) - b.mean(0)
  ref = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
  assert value == pytest.approx(ref, rel=1e-8)
  # A singular set against itself is ~0 (sqrt amplifies round-off of the
  # zero eigenvalues to ~1e-8 * lambda_max each, hence the looser bound).
  self_value = fid(a, a)
  assert np.isfinite(self_value) and 0.0 <= self_value < 1e-5 * np.trace(s1)


def test_fid_halves_small_vs_shifted():
  rng = np.random.default_rng(5)
  x = _sample_mixture(rng, _make_mixture(rng), 4000)
  h1, h2 = x[:2000], x[2000:]
  scale = np.trace(np.cov(x, rowvar=False))
  same = fid(h1, h2)
  shifted = fid(h1, h2 + 1.0)
  assert same < 0.02 * scale
  assert shifted > 10 * same


def test_noise_monotonically_increases_fid_and_lowers_precision():
  rng = np.random.default_rng(6)
  dist = _make_mixture(rng)
  real = _sample_mixture(rng, dist, 2000)
  base = _sample_mixture(rng, dist, 2000)
  noise = rng.normal(size=base.shape)
  fids, precisions = [], []
  for sigma in (0.0, 0.25, 0.4, 0.6):
    fake = base + sigma * noise
    fids.append(fid(real, fake))
    precisions.append(precision_recall(real, fake)[0])
  # Margins over 20 seeds were >= 4% (FID) and >= 0.1 (precision).
  assert all(b > 1.02 * a for a, b in zip(fids, fids[1:])), fids
  assert all(b < a - 0.05 for a, b in zip(precisions, precisions[1:])), precisions
  assert precisions[0] > 0.85


def test_frechet_distance_nonfinite_returns_nan():
  with pytest.warns(UserWarning):
    value = frechet_distance(np.zeros(2), np.eye(2), np.array([np.nan, 0]), np.eye(2))
  assert np.isnan(value)


# ---------------------------------------------------------------------------
# KID
# ---------------------------------------------------------------------------


def _mmd2_double_loop(x, y):
  m, d = x.shape
  k = lambda u, v: (np.dot(u, v) / d + 1.0) ** 3  # noqa: E731
  sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
  syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
  sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
  return sxx / (m * (m - 1)) + syy / (m * (m - 1)) - 2 * sxy / (m * m)


def test_kid_matches_double_loop():
  rng = np.random.default_rng(7)
  x = rng.normal(size=(7, 3))
  y = rng.normal(size=(7, 3)) * 1.3 + 0.4
  expected = _mmd2_double_loop(x, y)
  # subset_size is clipped to 7, so every subset is a permutation of the
  # full sets and the (permutation invariant) estimate is exact.
  mean, std = kid(x, y, num_subsets=3, subset_size=1000, seed=0)
  assert mean == pytest.approx(expected, rel=1e-10)
  assert std < 1e-10 * abs(expected)
  assert metrics._mmd2_unbiased_poly(x, y) == pytest.approx(expected, rel=1e-10)


def test_kid_same_vs_different_distribution():
  # Correlated Gaussian features.  (With the large-scale cluster mixture
  # used elsewhere, the cubic kernel is dominated by the per-subset
  # fluctuation of the mixture weights and KID is too noisy for a test.)
  rng = np.random.default_rng(8)
  mix = rng.normal(size=(32, 32)) / np.sqrt(32)
  mu = 0.5 * rng.normal(size=32)
  a = rng.normal(size=(2000, 32)) @ mix + mu
  b = rng.normal(size=(2000, 32)) @ mix + mu
  c = 1.15 * rng.normal(size=(2000, 32)) @ mix + mu + 0.1
  mean_same, std_same = kid(a, b, num_subsets=30, subset_size=500, seed=0)
  mean_diff, std_diff = kid(a, c, num_subsets=30, subset_size=500, seed=0)
  # Over 8 seeds: |mean_same|/std_same <= 0.6, mean_diff/std_diff >= 4.4,
  # mean_diff/|mean_same| >= 28.
  assert std_same > 0
  assert abs(mean_same) < std_same
  assert mean_diff > 3 * std_diff
  assert mean_diff > 10 * abs(mean_same)


def test_kid_seed_reproducible():
  rng = np.random.default_rng(9)
  a, b = rng.normal(size=(300, 8)), rng.normal(size=(200, 8))
  assert kid(a, b, num_subsets=5, subset_size=100, seed=3) == kid(
    a, b, num_subsets=5, subset_size=100, seed=3
  )


# ---------------------------------------------------------------------------
# Inception-Score analogue
# ---------------------------------------------------------------------------


def test_inception_score_uniform_confident():
  c, n = 10, 1000
  probs = np.eye(c)[np.arange(n) % c]
  mean, std = inception_score(probs, num_splits=10)
  assert mean == pytest.approx(c, rel=1e-9)
  assert std < 1e-9


def test_inception_score_identical_predictions():
  rng = np.random.default_rng(10)
  p = rng.dirichlet(np.ones(7))
  mean, std = inception_score(np.tile(p, (500, 1)), num_splits=5)
  assert mean == pytest.approx(1.0, abs=1e-9)
  assert std < 1e-9


def test_inception_score_matches_scipy_entropy():
  rng = np.random.default_rng(11)
  probs = rng.dirichlet(np.full(10, 0.3), size=600)
  scores = []
  for part in np.array_split(probs, 4):
    py = part.mean(0)
    scores.append(np.exp(np.mean([entropy(p, py) for p in part])))
  mean, std = inception_score(probs, num_splits=4)
  assert mean == pytest.approx(np.mean(scores), rel=1e-9)
  assert std == pytest.approx(np.std(scores), rel=1e-6, abs=1e-12)


# ---------------------------------------------------------------------------
# precision / recall / density / coverage
# ---------------------------------------------------------------------------


def _brute_force_prdc(real, fake, k_pr, k_dc):
  """Straightforward full-matrix reference (prdc-style, strict <)."""
  d_rr = cdist(real, real)
  d_ff = cdist(fake, fake)
  d_rf = cdist(real, fake)
  np.fill_diagonal(d_rr, np.inf)
  np.fill_diagonal(d_ff, np.inf)
  r_pr = np.sort(d_rr, axis=1)[:, k_pr - 1]
  f_pr = np.sort(d_ff, axis=1)[:, k_pr - 1]
  r_dc = np.sort(d_rr, axis=1)[:, k_dc - 1]
  precision = (d_rf < r_pr[:, None]).any(axis=0).mean()
  recall = (d_rf < f_pr[None, :]).any(axis=1).mean()
  density = (d_rf < r_dc[:, None]).sum() / (k_dc * fake.shape[0])
  coverage = (d_rf.min(axis=1) < r_dc).mean()
  return precision, recall, density, coverage


@pytest.mark.parametrize('use_sklearn', [True, False])
def test_manifold_metrics_match_brute_force_with_tiny_blocks(monkeypatch, use_sklearn):
  rng = np.random.default_rng(12)
  real = rng.normal(size=(230, 5)) + 10.0  # offset exercises centring
  fake = rng.normal(size=(170, 5)) * 1.2 + 10.3
  expected = _brute_force_prdc(real, fake, 3, 5)
  monkeypatch.setattr(metrics, '_BLOCK_ELEMENTS', 1000)  # many blocks
  if not use_sklearn:
    monkeypatch.setattr(metrics, '_knn_sq_radii', _numpy_radii)
  p, r = precision_recall(real, fake, k=3)
  d, c = density_coverage(real, fake, k=5)
  np.testing.assert_allclose([p, r, d, c], expected, rtol=1e-12)
  s = summary(real, fake, None, k_pr=3, k_dc=5, kid_subsets=2, kid_subset_size=50)
  np.testing.assert_allclose(
    [s['precision'], s['recall'], s['density'], s['coverage']], expected, rtol=1e-12
  )


def _knn_sq_radii_numpy(x: np.ndarray, ks: list[int]) -> dict[int, np.ndarray]:
  """An independent oracle for :func:`metrics._knn_sq_radii` (scikit-learn): blockwise numpy."""
  n = x.shape[0]
  kmax = max(ks)
  x_sq = np.einsum('ij,ij->i', x, x)
  out = {k: np.empty(n, dtype=np.float64) for k in ks}
  step = metrics._block_rows(n)
  for start in range(0, n, step):
    stop = min(n, start + step)
    d2 = metrics._sq_dists(x[start:stop], x, x_sq[start:stop], x_sq)
    rows = np.arange(stop - start)
    d2[rows, rows + start] = np.inf  # exclude self
    part = np.partition(d2, kmax - 1, axis=1)[:, :kmax]
    part.sort(axis=1)
    for k in ks:
      out[k][start:stop] = part[:, k - 1]
  return out


_orig_knn = metrics._knn_sq_radii


def _numpy_radii(x, ks):
  out = _knn_sq_radii_numpy(x, sorted(set(ks)))
  ref = _orig_knn(x, ks)
  for k in ks:
    np.testing.assert_allclose(out[k], ref[k], rtol=1e-9)
  return out


def test_precision_recall_identical_and_far():
  rng = np.random.default_rng(13)
  real = rng.normal(size=(400, 10))
  assert precision_recall(real, real.copy(), k=3) == (1.0, 1.0)
  far = rng.normal(size=(300, 10)) + 50.0
  precision, recall = precision_recall(real, far, k=3)
  assert precision == 0.0 and recall == 0.0


def test_precision_recall_half_the_modes():
  rng = np.random.default_rng(14)
  d = 16
  centers = 30.0 * np.eye(4, d)
  proj = rng.normal(size=(2, d))
  real = _clusters(rng, centers, 300, proj)
  fake = _clusters(rng, centers[:2], 300, proj)
  precision, recall = precision_recall(real, fake, k=3)
  assert precision > 0.93
  assert recall == pytest.approx(0.5, abs=0.05)
  assert recall <= 0.5


def test_density_coverage_sanity():
  rng = np.random.default_rng(15)
  d = 16
  centers = 30.0 * np.eye(4, d)
  proj = rng.normal(size=(2, d))
  real = _clusters(rng, centers, 300, proj)
  same = _clusters(rng, centers, 300, proj)
  half = _clusters(rng, centers[:2], 300, proj)

  # Identical sets: every ball holds exactly k fake points strictly inside
  # (itself + k-1 neighbours; the k-th neighbour sits on the boundary).
  density, coverage = density_coverage(real, real.copy(), k=5)
  assert density == pytest.approx(1.0, abs=1e-12)
  assert coverage == 1.0

  density, coverage = density_coverage(real, same, k=5)
  assert density == pytest.approx(1.0, abs=0.1)
  assert coverage > 0.9

  density, coverage = density_coverage(real, half, k=5)
  assert density == pytest.approx(1.0, abs=0.15)
  assert coverage == pytest.approx(0.5, abs=0.05)

  density, coverage = density_coverage(real, real + 1000.0, k=5)
  assert density == 0.0 and coverage == 0.0


def test_manifold_metrics_need_enough_samples():
  x = np.zeros((3, 2))
  with pytest.raises(ValueError):
    precision_recall(x, x, k=3)


# ---------------------------------------------------------------------------
# class accuracy and summary
# ---------------------------------------------------------------------------


def test_class_accuracy_hand_made():
  probs = np.array(
    [
      [0.9, 0.05, 0.05],  # pred 0, requested 0 -> ok
      [0.2, 0.7, 0.1],  # pred 1, requested 0 -> wrong
      [0.1, 0.8, 0.1],  # pred 1, requested 1 -> ok
      [0.1, 0.6, 0.3],  # pred 1, requested 1 -> ok
      [0.3, 0.3, 0.4],  # pred 2, requested 1 -> wrong
    ]
  )
  labels = np.array([0, 0, 1, 1, 1])
  overall, per_class = class_accuracy(probs, labels, num_classes=3)
  assert overall == pytest.approx(3 / 5)
  assert per_class.shape == (3,)
  np.testing.assert_allclose(per_class[:2], [0.5, 2 / 3])
  assert np.isnan(per_class[2])  # class 2 was never requested
  # logits give the same answer (only the argmax matters)
  assert class_accuracy(np.log(probs), labels, 3)[0] == pytest.approx(3 / 5)
  with pytest.raises(ValueError):
    class_accuracy(probs, labels, num_classes=4)
  with pytest.raises(ValueError):
    class_accuracy(probs, np.array([0, 0, 1, 1, 3]), num_classes=3)


def test_summary_keys_types_and_consistency():
  rng = np.random.default_rng(16)
  real = rng.normal(size=(300, 8)).astype(np.float32)
  fake = (rng.normal(size=(250, 8)) * 1.1 + 0.2).astype(np.float32)
  probs = rng.dirichlet(np.ones(5), size=250)
  out = summary(real, fake, probs, kid_subsets=4, kid_subset_size=100, seed=1)
  keys = ('fid', 'kid', 'kid_std', 'is', 'is_std', 'precision', 'recall', 'density', 'coverage')
  assert set(out) == set(keys)
  assert all(type(v) is float for v in out.values())
  assert out['fid'] == pytest.approx(fid(real, fake), rel=1e-12)
  assert (out['kid'], out['kid_std']) == kid(real, fake, 4, 100, seed=1)
  assert (out['is'], out['is_std']) == inception_score(probs)
  assert (out['precision'], out['recall']) == precision_recall(real, fake, k=3)
  assert (out['density'], out['coverage']) == density_coverage(real, fake, k=5)
  no_probs = summary(real, fake, None, kid_subsets=2, kid_subset_size=50)
  assert np.isnan(no_probs['is']) and np.isnan(no_probs['is_std'])
