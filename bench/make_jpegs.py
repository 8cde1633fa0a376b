"""Writes N CelebA-like JPEGs (178x218, smooth colour fields plus noise, quality 95) into a
directory, for `ffw bench-loader` and bench/loader_torch.py.

    python3 bench/make_jpegs.py /tmp/jpegs 3000
"""
import sys
from pathlib import Path

import numpy as np
from PIL import Image


def main(out: str, n: int) -> None:
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    h, w = 218, 178
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for k in range(n):
        a, b, c = rng.uniform(0.2, 1.0, 3)
        base = np.stack(
            [
                128 + 100 * np.sin(xx / (15 + 30 * a) + k),
                128 + 100 * np.cos(yy / (15 + 30 * b)),
                128 + 100 * np.sin((xx + yy) / (20 + 30 * c)),
            ],
            axis=-1,
        )
        img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(out_dir / f"{k + 1:06d}.jpg", quality=95)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
