"""Model inputs prepared once and fed bit-identically to the official predictor and to our
engine (make_golden.py, bench_official.py).

The official video loader (`sam2.utils.misc._load_img_as_tensor`) resizes each frame with
PIL to image_size x image_size, scales to [0, 1] and normalises. `prepare` does the resize
and keeps the result as 8-bit PNG; our engine reads those PNGs (its own resize is then the
identity) and `load` applies the official normalisation to them (bit-exact), so both sides
see the same pixels. This file is our own.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import torch
from PIL import Image

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def prepare(frames_dir: str, out_dir: str, image_size: int, names: list[str]) -> None:
    """PIL-resize frames_dir/<name> to image_size x image_size into out_dir/<name>."""
    os.makedirs(out_dir, exist_ok=True)
    for name in names:
        im = Image.open(os.path.join(frames_dir, name)).convert("RGB")
        im.resize((image_size, image_size)).save(os.path.join(out_dir, name))


def normalise(pixels: np.ndarray) -> torch.Tensor:
    """The official normalisation of 8-bit RGB images [N, S, S, 3]: [N, 3, S, S] float32."""
    imgs = torch.from_numpy(pixels / 255.0).float().permute(0, 3, 1, 2)
    imgs -= torch.tensor(MEAN, dtype=torch.float32)[:, None, None]
    imgs /= torch.tensor(STD, dtype=torch.float32)[:, None, None]
    return imgs


def load(inputs_dir: str, image_size: int, names: list[str]) -> torch.Tensor:
    """The official normalisation of the prepared 8-bit inputs: [N, 3, S, S] float32."""
    pixels = []
    for name in names:
        a = np.array(Image.open(os.path.join(inputs_dir, name)).convert("RGB"))
        if a.shape[:2] != (image_size, image_size):
            raise ValueError(f"{inputs_dir}/{name} is {a.shape[1]}x{a.shape[0]}, not a prepared {image_size}x{image_size} input")
        pixels.append(a)
    return normalise(np.stack(pixels)).contiguous()


@contextlib.contextmanager
def fed_to_official(images: torch.Tensor, height: int, width: int):
    """Within it, the official predictor's init_state takes `images` (from `load`) as the
    video's frames, with the video size height x width (the size its masks come out at),
    instead of reading a JPEG folder (no lossy re-encode)."""
    import sam2.sam2_video_predictor as svp

    orig = svp.load_video_frames
    svp.load_video_frames = lambda **kw: (images.clone(), height, width)
    try:
        yield
    finally:
        svp.load_video_frames = orig
