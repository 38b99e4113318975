"""Image files decoded once into memory: a list of (path, label) becomes one uint8 (N, 3, S, S)
tensor, each image converted to RGB and fitted to S x S (scaled so its shorter side is S, then
centre-cropped: an image already S x S is unchanged). Decoding runs in threads (PIL releases the
GIL while it decodes), in the list's order."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import UserError

# Decoded splits larger than this (both splits together, 3 x S x S bytes per image) are streamed
# from their files instead: Tiny-ImageNet (110k x 64 x 64) is 1.35 GB, ImageNet at 224 is 193 GB.
IN_MEMORY_BYTES = 4 * 2**30
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")


def decoded_bytes(n: int, image_size: int) -> int:
    return n * 3 * image_size * image_size


def fits_in_memory(n: int, image_size: int) -> bool:
    return decoded_bytes(n, image_size) <= IN_MEMORY_BYTES


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def decode(path: str | Path, size: int) -> np.ndarray:
    """One image as uint8 (3, size, size)."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            if img.size != (size, size):
                img = ImageOps.fit(img, (size, size), method=Image.BILINEAR)
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)
    except OSError as e:  # includes PIL.UnidentifiedImageError
        raise UserError(f"{path}: cannot read image ({e})") from None


def decode_all(paths: list, size: int, workers: int | None = None) -> torch.Tensor:
    """Every image of ``paths`` as one uint8 (N, 3, size, size) tensor, in order."""
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    workers = workers or min(8, os.cpu_count() or 1)

    def one(i: int) -> None:
        out[i] = decode(paths[i], size)

    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(len(paths))))
    return torch.from_numpy(out)
