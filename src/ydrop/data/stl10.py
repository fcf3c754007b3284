"""STL-10, binary version (``stl10_binary/``).

``train_X.bin`` (5,000 images) and ``test_X.bin`` (8,000) are raw uint8 images of
3 x 96 x 96 bytes each, channel by channel, each channel stored **column-major**
(as MATLAB writes it): reading one image as (3, 96, 96) gives (C, W, H), so it is
transposed to (C, H, W). ``train_y.bin`` / ``test_y.bin`` hold one uint8 label per
image, 1..10. See https://cs.stanford.edu/~acoates/stl10/.
"""

from __future__ import annotations

import numpy as np

from .errors import DatasetFormatError, check_label_range

__all__ = ["decode_stl10", "IMAGE_BYTES"]

IMAGE_BYTES = 3 * 96 * 96


def decode_stl10(x_content: bytes, y_content: bytes, x_source: str, y_source: str) -> tuple[np.ndarray, np.ndarray]:
    """Decode a pair of STL-10 image and label files.

    Returns:
        ``(images, labels)``: uint8 array (N, 3, 96, 96) and int64 array (N,) of
        class indices 0..9 (the file's labels minus one).
    """
    if len(x_content) == 0 or len(x_content) % IMAGE_BYTES:
        raise DatasetFormatError(
            f"{x_source}: {len(x_content)} bytes, not a positive multiple of {IMAGE_BYTES} "
            "(one 3x96x96 uint8 image); the file is truncated or not an STL-10 image file"
        )
    n = len(x_content) // IMAGE_BYTES
    if len(y_content) != n:
        raise DatasetFormatError(
            f"{y_source}: {len(y_content)} labels, but {x_source} holds {n} images"
        )
    labels = np.frombuffer(y_content, dtype=np.uint8).astype(np.int64)
    check_label_range(labels, 1, 10, f"{y_source}: labels", "1..10")
    images = np.frombuffer(x_content, dtype=np.uint8).reshape(n, 3, 96, 96)
    # column-major channels: swap the last two axes to get (N, C, H, W)
    return np.ascontiguousarray(images.transpose(0, 1, 3, 2)), labels - 1
