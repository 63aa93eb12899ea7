"""Model-independent GAN evaluation metrics on numpy arrays.

Published GAN metrics (FID, KID, Inception Score, ...) are defined on the
features / softmax outputs of a pretrained Inception-v3 network; gan_jax computes
them on those (gan_jax/fid.py, given pytorch-fid's weights file) and, offline, on
the penultimate-layer features and softmax outputs of its own trained classifier,
whose numbers compare only with each other (same classifier, data set and sample
sizes), not with published values.

Everything in this module is pure numpy/scipy math; it knows nothing about
models.  Inputs are

* ``features``: array of shape ``(n, d)`` (any float dtype; converted to
  float64 internally),
* ``probs``: array of shape ``(n, num_classes)`` of class probabilities
  (rows summing to one).

Numerical notes
---------------
* All computations use float64.
* Pairwise distances are computed blockwise as
  ``||a||^2 + ||b||^2 - 2 a.b`` (clipped at 0) on data centred at the real
  mean, so that 10k x 10k sets of 128-d features need only a bounded amount
  of memory (see ``_BLOCK_ELEMENTS``).  k-NN radii use scikit-learn's
  brute-force search.
* The Frechet distance avoids ``scipy.linalg.sqrtm`` of the non-symmetric
  product ``sigma1 @ sigma2`` and instead uses the eigenvalues of the
  symmetric PSD matrix ``sqrt(sigma1) @ sigma2 @ sqrt(sigma1)``, which has the
  same spectrum.  This is stable for singular covariances (fewer samples than
  dimensions).
"""

from __future__ import annotations

from collections.abc import Sequence
import math
import warnings

import numpy as np
from sklearn import neighbors

__all__ = [
  'feature_statistics',
  'frechet_distance',
  'fid',
  'kid',
  'inception_score',
  'precision_recall',
  'density_coverage',
  'class_accuracy',
  'stacked_modes',
  'mode_coverage',
  'summary',
]

# Maximum number of float64 entries of one block of the distance matrix
# (2**23 entries = 64 MiB).  A few temporaries of this size exist at once.
_BLOCK_ELEMENTS = 2**23

# log(0) protection for the Inception-Score analogue.
_EPS = 1e-12

# Ball membership in the manifold metrics is ``d^2 < r^2 * (1 - _TIE_RTOL)``.
# The radii (k-NN distances) and the cross distances are computed by different
# code paths, so an exact tie (e.g. the k-th neighbour of a real sample that
# also appears in the fake set) would otherwise be decided by round-off.  The
# margin makes such ties deterministically "outside" (the strict ``<`` of the
# reference implementation of Naeem et al.); it is far above float64 round-off
# of centred data and far below any meaningful change of a radius.
_TIE_RTOL = 1e-9


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def _as_2d(x, name: str) -> np.ndarray:
  x = np.asarray(x, dtype=np.float64)
  if x.ndim != 2:
    raise ValueError(f'{name} must be a 2-D array (n, d); got shape {x.shape}')
  if x.shape[0] == 0:
    raise ValueError(f'{name} is empty')
  return x


def _check_same_dim(a: np.ndarray, b: np.ndarray) -> None:
  if a.shape[1] != b.shape[1]:
    raise ValueError(f'feature dimensions differ: {a.shape[1]} vs {b.shape[1]}')


def _block_rows(n_cols: int) -> int:
  return max(1, _BLOCK_ELEMENTS // max(1, n_cols))


def _sq_dists(a: np.ndarray, b: np.ndarray, a_sq: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
  """Squared Euclidean distances between rows of ``a`` and ``b`` (clipped >= 0)."""
  d2 = a @ b.T
  d2 *= -2.0
  d2 += a_sq[:, None]
  d2 += b_sq[None, :]
  np.maximum(d2, 0.0, out=d2)
  return d2


def _center_pair(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Subtract the real mean from both sets.

  Distances are translation invariant, and centring reduces the cancellation
  error of ``||a||^2 + ||b||^2 - 2 a.b`` when features share a large offset
  (e.g. non-negative post-ReLU features).
  """
  mu = real.mean(axis=0, keepdims=True)
  return real - mu, fake - mu


def _knn_sq_radii(x: np.ndarray, ks: Sequence[int]) -> dict[int, np.ndarray]:
  """Squared distance of every row of ``x`` to its k-th nearest neighbour.

  The point itself is excluded (by index); other exact duplicates do count
  as neighbours at distance 0.  Uses scikit-learn's brute-force k-NN
  (chunked, multithreaded, float64), about 3x faster than a blockwise
  ``np.partition`` (the tests' oracle).  Memory is bounded.
  """
  n = x.shape[0]
  ks = sorted(set(int(k) for k in ks))
  if ks[0] < 1:
    raise ValueError(f'k must be >= 1, got {ks[0]}')
  kmax = ks[-1]
  if n <= kmax:
    raise ValueError(f'need more than k={kmax} samples to compute k-NN radii, got {n}')
  nn = neighbors.NearestNeighbors(n_neighbors=kmax, algorithm='brute', metric='euclidean')
  # kneighbors() without a query excludes each point itself.
  dist, _ = nn.fit(x).kneighbors(n_neighbors=kmax, return_distance=True)
  dist = np.asarray(dist, dtype=np.float64)
  return {k: dist[:, k - 1] ** 2 for k in ks}


def _manifold_pass(
  real: np.ndarray,
  fake: np.ndarray,
  real_r2_pr: np.ndarray | None,
  fake_r2_pr: np.ndarray | None,
  real_r2_dc: np.ndarray | None,
) -> dict[str, float]:
  """One blockwise pass over the fake x real distance matrix.

  Computes whichever of precision/recall (needs ``real_r2_pr`` and
  ``fake_r2_pr``) and density/coverage (needs ``real_r2_dc``) are requested.
  Ball membership uses the strict inequality ``d < r`` as in the reference
  implementation of Naeem et al. (2020) (``prdc``), with exact ties resolved
  as "outside" (see ``_TIE_RTOL``); the Kynkaanniemi et al. code uses
  ``<=``, which differs only on exact ties.
  """
  n_real, n_fake = real.shape[0], fake.shape[0]
  shrink = 1.0 - _TIE_RTOL
  real_r2_pr = None if real_r2_pr is None else real_r2_pr * shrink
  fake_r2_pr = None if fake_r2_pr is None else fake_r2_pr * shrink
  real_r2_dc = None if real_r2_dc is None else real_r2_dc * shrink
  do_pr = real_r2_pr is not None and fake_r2_pr is not None
  do_dc = real_r2_dc is not None
  real_sq = np.einsum('ij,ij->i', real, real)
  fake_sq = np.einsum('ij,ij->i', fake, fake)

  fake_in_real = np.zeros(n_fake, dtype=bool)  # precision
  real_in_fake = np.zeros(n_real, dtype=bool)  # recall
  density_count = 0
  min_d2_real = np.full(n_real, np.inf)  # coverage

  step = _block_rows(n_real)
  for start in range(0, n_fake, step):
    stop = min(n_fake, start + step)
    d2 = _sq_dists(fake[start:stop], real, fake_sq[start:stop], real_sq)
    if do_pr:
      fake_in_real[start:stop] = (d2 < real_r2_pr[None, :]).any(axis=1)
      real_in_fake |= (d2 < fake_r2_pr[start:stop, None]).any(axis=0)
    if do_dc:
      density_count += int(np.count_nonzero(d2 < real_r2_dc[None, :]))
      np.minimum(min_d2_real, d2.min(axis=0), out=min_d2_real)

  out: dict[str, float] = {}
  if do_pr:
    out['precision'] = float(fake_in_real.mean())
    out['recall'] = float(real_in_fake.mean())
  if do_dc:
    out['density_count'] = float(density_count)
    out['coverage'] = float((min_d2_real < real_r2_dc).mean())
  return out


# ---------------------------------------------------------------------------
# Frechet distance / FID
# ---------------------------------------------------------------------------


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
  """Mean and covariance of a feature set.

  Args:
      features: array ``(n, d)`` with ``n >= 2``.

  Returns:
      ``(mu, sigma)``: float64 mean of shape ``(d,)`` and unbiased sample
      covariance of shape ``(d, d)`` (``np.cov(features, rowvar=False)``).
  """
  x = _as_2d(features, 'features')
  if x.shape[0] < 2:
    raise ValueError('need at least 2 samples to estimate a covariance')
  mu = x.mean(axis=0)
  sigma = np.atleast_2d(np.cov(x, rowvar=False))
  return mu, sigma


def _clean_eigenvalues(w: np.ndarray) -> np.ndarray:
  """Zero eigenvalues of a PSD matrix that are indistinguishable from 0.

  Eigenvalues below ``n * eps * max|w|`` (the usual numerical-rank
  threshold) are round-off of exact zeros (singular covariances) and are set
  to 0 -- taking their square root would otherwise add ~1e-8 * sqrt(max|w|)
  each to the trace.  Negative round-off is clipped as well.
  """
  if w.size == 0:
    return w
  tol = w.size * np.finfo(np.float64).eps * float(np.max(np.abs(w)))
  return np.where(w > tol, w, 0.0)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
  """Symmetric square root of a (numerically) PSD matrix via ``eigh``."""
  w, v = np.linalg.eigh(s)
  w = np.sqrt(_clean_eigenvalues(w))
  return (v * w) @ v.T


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
  """Frechet distance between the Gaussians N(mu1, sigma1) and N(mu2, sigma2).

  ``||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2})``

  The trace of the matrix square root is computed in float64 as
  ``sum_i sqrt(lambda_i)`` where ``lambda_i`` are the eigenvalues of the
  symmetric PSD matrix ``sqrt(sigma1) @ sigma2 @ sqrt(sigma1)`` (same
  spectrum as ``sigma1 @ sigma2``), with ``sqrt(sigma1)`` from ``eigh``.
  In both eigendecompositions, eigenvalues below the numerical-rank
  threshold ``d * eps * lambda_max`` (including tiny negative ones) are set
  to 0.  This never produces complex
  values or NaN for singular covariances (e.g. fewer samples than
  dimensions).

  A result that is negative only by round-off is clipped to 0; a clearly
  negative result (only possible for non-PSD "covariances") is returned
  unchanged with a warning.  Non-finite inputs give ``nan`` (with a warning).

  Returns:
      The distance as a Python float.
  """
  mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
  mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
  s1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
  s2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
  d = mu1.shape[0]
  if mu2.shape != (d,) or s1.shape != (d, d) or s2.shape != (d, d):
    raise ValueError(
      f'shape mismatch: mu1 {mu1.shape}, mu2 {mu2.shape}, sigma1 {s1.shape}, sigma2 {s2.shape}'
    )
  if not all(np.all(np.isfinite(a)) for a in (mu1, mu2, s1, s2)):
    warnings.warn('frechet_distance: non-finite statistics, returning nan', stacklevel=2)
    return float('nan')

  s1 = 0.5 * (s1 + s1.T)
  s2 = 0.5 * (s2 + s2.T)
  diff = mu1 - mu2
  r1 = _psd_sqrt(s1)
  m = r1 @ s2 @ r1
  m = 0.5 * (m + m.T)
  lam = _clean_eigenvalues(np.linalg.eigvalsh(m))
  tr_covmean = float(np.sqrt(lam).sum())

  mean_term = float(diff @ diff)
  tr1, tr2 = float(np.trace(s1)), float(np.trace(s2))
  value = mean_term + tr1 + tr2 - 2.0 * tr_covmean
  if value < 0.0:
    scale = mean_term + abs(tr1) + abs(tr2)
    # eigenvalue round-off is ~ eps * ||s||, amplified by sqrt near zero.
    tol = 1e-6 * scale + 1e-300
    if -value <= tol:
      value = 0.0
    else:
      warnings.warn(
        f'frechet_distance is negative ({value:.3g}); are the covariances PSD?', stacklevel=2
      )
  return value


def fid(features_a, features_b) -> float:
  """Frechet distance between Gaussian fits of two feature sets.

  Convenience wrapper: ``frechet_distance(*feature_statistics(a),
  *feature_statistics(b))``.  With features of gan_jax's own classifier this
  is an FID *analogue*, not comparable to Inception-based FID values.
  """
  a = _as_2d(features_a, 'features_a')
  b = _as_2d(features_b, 'features_b')
  _check_same_dim(a, b)
  mu1, s1 = feature_statistics(a)
  mu2, s2 = feature_statistics(b)
  return frechet_distance(mu1, s1, mu2, s2)


# ---------------------------------------------------------------------------
# KID
# ---------------------------------------------------------------------------


def _poly3_kernel_sums(g: np.ndarray, d: int) -> tuple[float, float]:
  """Given a Gram matrix ``g``, return (sum of k, trace of k) for k = (g/d+1)^3."""
  k = g / d
  k += 1.0
  diag = np.diagonal(k).copy() if k.shape[0] == k.shape[1] else None
  k3 = k * k
  k3 *= k  # much faster than ``k ** 3``
  total = float(k3.sum())
  tr = float((diag**3).sum()) if diag is not None else 0.0
  return total, tr


def _mmd2_unbiased_poly(x: np.ndarray, y: np.ndarray) -> float:
  """Unbiased MMD^2 with the kernel k(a, b) = (a.b / d + 1)^3, |x| == |y|."""
  m, d = x.shape
  sum_xx, tr_xx = _poly3_kernel_sums(x @ x.T, d)
  sum_yy, tr_yy = _poly3_kernel_sums(y @ y.T, d)
  sum_xy, _ = _poly3_kernel_sums(x @ y.T, d)
  return float(((sum_xx - tr_xx) + (sum_yy - tr_yy)) / (m * (m - 1)) - 2.0 * sum_xy / (m * m))


def kid(
  features_a,
  features_b,
  num_subsets: int = 100,
  subset_size: int = 1000,
  seed: int = 0,
) -> tuple[float, float]:
  """Kernel Inception Distance analogue (Binkowski et al., 2018).

  For each of ``num_subsets`` rounds, ``subset_size`` rows are drawn without
  replacement from each set and the unbiased estimate of MMD^2 with the
  cubic polynomial kernel ``k(x, y) = (x.y / d + 1)^3`` is computed::

      1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(m(m-1)) sum_{i!=j} k(y_i, y_j)
        - 2/m^2 sum_{i,j} k(x_i, y_j)

  This matches the reference KID implementations (original TF code,
  torch-fidelity, clean-fid).  ``subset_size`` is clipped to the size of the
  smaller set (and must be >= 2).  The estimate is unbiased, so it can be
  slightly negative when the distributions agree.

  Returns:
      ``(mean, std)`` over the subsets (``std`` with ``ddof=0``), as floats.
  """
  a = _as_2d(features_a, 'features_a')
  b = _as_2d(features_b, 'features_b')
  _check_same_dim(a, b)
  if num_subsets < 1:
    raise ValueError('num_subsets must be >= 1')
  m = int(min(subset_size, a.shape[0], b.shape[0]))
  if m < 2:
    raise ValueError('KID needs subsets of at least 2 samples per set')
  rng = np.random.default_rng(seed)
  vals = np.empty(num_subsets, dtype=np.float64)
  for i in range(num_subsets):
    x = a[rng.choice(a.shape[0], m, replace=False)]
    y = b[rng.choice(b.shape[0], m, replace=False)]
    vals[i] = _mmd2_unbiased_poly(x, y)
  return float(vals.mean()), float(vals.std())


# ---------------------------------------------------------------------------
# Inception-Score analogue
# ---------------------------------------------------------------------------


def inception_score(probs, num_splits: int = 10) -> tuple[float, float]:
  """Inception-Score analogue computed on gan_jax's own classifier outputs.

  ``IS = exp(E_x[ KL(p(y|x) || p(y)) ])`` where ``p(y)`` is the mean of
  ``p(y|x)`` over the split.  The samples are divided into ``num_splits``
  contiguous splits (``np.array_split``, as in the original implementation);
  the score is computed per split and the mean and std (``ddof=0``) over
  splits are returned.  Logs are eps-safe (``0 * log 0 = 0``).

  The value lies in ``[1, num_classes]``: ~1 when all predictions are the
  same, ~``num_classes`` for confident predictions spread uniformly over
  classes.  Because it uses our classifier rather than Inception-v3 it is
  not comparable to published Inception Scores.

  Args:
      probs: ``(n, num_classes)`` class probabilities (rows sum to 1).
      num_splits: number of splits (clipped to ``n``).

  Returns:
      ``(mean, std)`` as floats.
  """
  p = _as_2d(probs, 'probs')
  if np.any(p < 0):
    raise ValueError('probs must be non-negative (pass softmax outputs, not logits)')
  num_splits = int(max(1, min(num_splits, p.shape[0])))
  log_p = np.log(np.clip(p, _EPS, None))
  scores = []
  for idx in np.array_split(np.arange(p.shape[0]), num_splits):
    part, log_part = p[idx], log_p[idx]
    py = part.mean(axis=0, keepdims=True)
    log_py = np.log(np.clip(py, _EPS, None))
    kl = (part * (log_part - log_py)).sum(axis=1)
    scores.append(math.exp(float(kl.mean())))
  scores = np.asarray(scores)
  return float(scores.mean()), float(scores.std())


# ---------------------------------------------------------------------------
# manifold metrics
# ---------------------------------------------------------------------------


def precision_recall(real_features, fake_features, k: int = 3) -> tuple[float, float]:
  """Improved precision and recall (Kynkaanniemi et al., 2019).

  Each set's manifold is the union of balls around its samples with radius
  equal to the distance to the sample's k-th nearest neighbour in the same
  set (excluding itself).

  * precision = fraction of fake samples inside the real manifold
    (strictly within the radius of some real sample),
  * recall = fraction of real samples inside the fake manifold.

  Distances are computed blockwise in float64 (bounded memory).  Exact
  ties on a ball boundary count as outside (see ``_TIE_RTOL``).

  Returns:
      ``(precision, recall)`` as floats in [0, 1].
  """
  real = _as_2d(real_features, 'real_features')
  fake = _as_2d(fake_features, 'fake_features')
  _check_same_dim(real, fake)
  real, fake = _center_pair(real, fake)
  r_real = _knn_sq_radii(real, [k])[k]
  r_fake = _knn_sq_radii(fake, [k])[k]
  out = _manifold_pass(real, fake, r_real, r_fake, None)
  return out['precision'], out['recall']


def density_coverage(real_features, fake_features, k: int = 5) -> tuple[float, float]:
  """Density and coverage (Naeem et al., 2020).

  With ``B_i`` the ball around real sample ``i`` of radius equal to its k-NN
  distance among the real samples (self excluded):

  * density = ``1/(k M) sum_j sum_i 1[fake_j in B_i]`` (M fake samples);
    ~1 when fake and real follow the same distribution, can exceed 1,
  * coverage = fraction of real samples whose ball contains at least one
    fake sample.

  Only the real set's k-NN radii are needed (the fake set's are not).

  Returns:
      ``(density, coverage)`` as floats.
  """
  real = _as_2d(real_features, 'real_features')
  fake = _as_2d(fake_features, 'fake_features')
  _check_same_dim(real, fake)
  real, fake = _center_pair(real, fake)
  r_real = _knn_sq_radii(real, [k])[k]
  out = _manifold_pass(real, fake, None, None, r_real)
  density = out['density_count'] / (k * fake.shape[0])
  return float(density), out['coverage']


# ---------------------------------------------------------------------------
# conditional generation
# ---------------------------------------------------------------------------


def class_accuracy(probs, requested_labels, num_classes: int) -> tuple[float, np.ndarray]:
  """Classifier accuracy on generated images w.r.t. the requested classes.

  For a conditional generator asked to produce class ``requested_labels[i]``
  for sample ``i``, the classifier's ``argmax`` prediction is compared with
  the requested label.

  Args:
      probs: ``(n, num_classes)`` probabilities (logits also work, only the
          argmax is used).
      requested_labels: ``(n,)`` integer labels the generator was asked for.
      num_classes: number of classes.

  Returns:
      ``(overall, per_class)``: overall accuracy as a float and a float64
      array of shape ``(num_classes,)`` with the accuracy for each requested
      class (``nan`` for classes that were never requested).
  """
  p = _as_2d(probs, 'probs')
  labels = np.asarray(requested_labels).reshape(-1)
  if labels.shape[0] != p.shape[0]:
    raise ValueError(f'got {p.shape[0]} predictions but {labels.shape[0]} labels')
  if p.shape[1] != num_classes:
    raise ValueError(f'probs has {p.shape[1]} columns, expected {num_classes}')
  labels = labels.astype(np.int64)
  if labels.min() < 0 or labels.max() >= num_classes:
    raise ValueError('requested_labels out of range [0, num_classes)')
  correct = (p.argmax(axis=1) == labels).astype(np.float64)
  counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
  hits = np.bincount(labels, weights=correct, minlength=num_classes)
  with np.errstate(invalid='ignore', divide='ignore'):
    per_class = np.where(counts > 0, hits / np.maximum(counts, 1.0), np.nan)
  return float(correct.mean()), per_class


# ---------------------------------------------------------------------------
# mode coverage (Stacked MNIST)
# ---------------------------------------------------------------------------


def stacked_modes(digit_probs, digits_per_image: int = 3) -> np.ndarray:
  """Mode ids of stacked-digit images from per-channel digit probabilities.

  Args:
      digit_probs: ``(n * digits_per_image, 10)`` probabilities (or logits),
          the channels of image ``i`` at rows ``i * digits_per_image ...``.
      digits_per_image: digits stacked in one image (3 for Stacked MNIST).

  Returns:
      ``(n,)`` int64 mode ids ``sum_j digit_j * 10**(digits_per_image-1-j)``,
      e.g. ``100 a + 10 b + c`` for three digits.
  """
  p = _as_2d(digit_probs, 'digit_probs')
  if p.shape[0] % digits_per_image:
    raise ValueError(f'{p.shape[0]} rows do not split into images of {digits_per_image}')
  digits = p.argmax(axis=1).reshape(-1, digits_per_image).astype(np.int64)
  return digits @ (10 ** np.arange(digits_per_image - 1, -1, -1, dtype=np.int64))


def mode_coverage(mode_ids, num_modes: int = 1000) -> dict[str, float]:
  """How many of ``num_modes`` modes the samples hit, and the KL divergence
  ``KL(p_samples || uniform) = sum_m p_m log(p_m * num_modes)`` of their
  mode histogram from the uniform one (Metz et al. 2017; 0 = perfectly
  even, ``log(num_modes)`` = every sample in one mode).

  Returns ``{'modes': ..., 'mode_kl': ...}``.
  """
  ids = np.asarray(mode_ids).reshape(-1).astype(np.int64)
  if ids.size == 0:
    raise ValueError('no samples')
  if ids.min() < 0 or ids.max() >= num_modes:
    raise ValueError(f'mode ids out of range [0, {num_modes})')
  counts = np.bincount(ids, minlength=num_modes).astype(np.float64)
  p = counts / counts.sum()
  hit = p > 0
  kl = float(np.sum(p[hit] * np.log(p[hit] * num_modes)))
  return {'modes': int(hit.sum()), 'mode_kl': max(kl, 0.0)}


# ---------------------------------------------------------------------------
# all-in-one
# ---------------------------------------------------------------------------


def summary(
  real_features,
  fake_features,
  fake_probs=None,
  *,
  k_pr: int = 3,
  k_dc: int = 5,
  kid_subsets: int = 100,
  kid_subset_size: int = 1000,
  is_splits: int = 10,
  seed: int = 0,
) -> dict[str, float]:
  """Compute all unconditional metrics at once.

  Shares the k-NN radius computation of the real set between
  precision/recall and density/coverage and makes a single blockwise pass
  over the fake x real distances.

  Args:
      real_features: ``(n_real, d)`` classifier features of real images.
      fake_features: ``(n_fake, d)`` classifier features of generated images.
      fake_probs: ``(n_fake, num_classes)`` classifier probabilities of the
          generated images, or ``None`` (then 'is'/'is_std' are ``nan``).
      k_pr: k for precision/recall.
      k_dc: k for density/coverage.
      kid_subsets, kid_subset_size, seed: passed to :func:`kid`.
      is_splits: splits for the Inception-Score analogue.

  Returns:
      dict with keys 'fid', 'kid', 'kid_std', 'is', 'is_std', 'precision',
      'recall', 'density', 'coverage' (all Python floats).
  """
  real = _as_2d(real_features, 'real_features')
  fake = _as_2d(fake_features, 'fake_features')
  _check_same_dim(real, fake)

  out: dict[str, float] = {}
  out['fid'] = fid(real, fake)
  out['kid'], out['kid_std'] = kid(
    real, fake, num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed
  )
  if fake_probs is None:
    out['is'], out['is_std'] = float('nan'), float('nan')
  else:
    out['is'], out['is_std'] = inception_score(fake_probs, num_splits=is_splits)

  real_c, fake_c = _center_pair(real, fake)
  real_r = _knn_sq_radii(real_c, [k_pr, k_dc])
  fake_r = _knn_sq_radii(fake_c, [k_pr])[k_pr]
  m = _manifold_pass(real_c, fake_c, real_r[k_pr], fake_r, real_r[k_dc])
  out['precision'] = m['precision']
  out['recall'] = m['recall']
  out['density'] = float(m['density_count'] / (k_dc * fake.shape[0]))
  out['coverage'] = m['coverage']
  return {
    key: float(out[key])
    for key in (
      'fid',
      'kid',
      'kid_std',
      'is',
      'is_std',
      'precision',
      'recall',
      'density',
      'coverage',
    )
  }
