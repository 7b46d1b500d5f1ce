"""PNG bytes, as event files and backends carry images, turned back into pixels."""
from __future__ import annotations

import numpy as np


def png_pixels(data: bytes) -> np.ndarray:
    """PNG bytes as an H x W x 3 uint8 array."""
    import io

    from PIL import Image as PILImage

    return np.asarray(PILImage.open(io.BytesIO(data)).convert("RGB"))
