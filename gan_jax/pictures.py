"""Image grids and PNG files (host-side numpy)."""

import math
import os

import numpy as np
from PIL import Image


def grid(images: np.ndarray, rows: int | None = None, pad: int = 2) -> np.ndarray:
  """uint8 (N, H, W, C) -> one uint8 (rows*(H+pad)+pad, cols*(W+pad)+pad, C) image."""
  n, h, w, c = images.shape
  rows = rows or int(math.ceil(math.sqrt(n)))
  cols = int(math.ceil(n / rows))
  out = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, c), np.uint8)
  for i, image in enumerate(images):
    r, col = divmod(i, cols)
    out[
      pad + r * (h + pad) : pad + r * (h + pad) + h,
      pad + col * (w + pad) : pad + col * (w + pad) + w,
    ] = image
  return out


def save_png(path: str, image: np.ndarray, min_size: int = 256) -> None:
  """Writes a uint8 HWC image; small images are enlarged (nearest) so a person can see them."""
  scale = max(1, -(-min_size // max(image.shape[:2])))  # Ceiling division.
  if scale > 1:
    image = image.repeat(scale, axis=0).repeat(scale, axis=1)
  os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
  Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(path)
