"""PyTorch's side of the loader benchmark: images/second through a DataLoader with
torchvision's Resize((S, S)) + ToTensor + Normalize (ImageNet) over every JPEG/PNG of a
directory, with W worker processes and batch B; one untimed pass first (page cache), as
`ffw bench-loader` does.

    python3 bench/loader_torch.py /tmp/jpegs --workers 2 --size 224 --batch 64
"""
import argparse
import time
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms


class Files(Dataset):
    def __init__(self, paths, size):
        self.paths = paths
        self.transform = transforms.Compose(
            [
                transforms.Resize((size, size)),
                transforms.ToTensor(),
                transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
            ]
        )

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.transform(Image.open(self.paths[i]).convert("RGB"))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(1)
    paths = sorted(
        p for p in Path(args.dir).iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")
    )
    loader = DataLoader(
        Files(paths, args.size), batch_size=args.batch, num_workers=args.workers
    )

    def one_pass() -> float:
        start = time.perf_counter()
        for _ in loader:
            pass
        return len(paths) / (time.perf_counter() - start)

    one_pass()
    rate = one_pass()
    print(
        f"{len(paths)} images from {args.dir} to {args.size}x{args.size}, batch {args.batch}, "
        f"workers {args.workers}: {rate:.0f} images/s"
    )


if __name__ == "__main__":
    main()
