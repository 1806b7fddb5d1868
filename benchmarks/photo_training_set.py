"""The training photos of ``diffusion-photo``: the natural images bundled with scikit-image, PyWavelets and
Matplotlib, minus the evaluation photos of ``real_images.py``, written as grey 256x256 PNGs.

    python benchmarks/photo_training_set.py --out data/photos-train

Which images (all offline, shipped inside the wheels):

- scikit-image ``skimage.data``: camera (also ``real_images.py``'s tuning image), brick, grass, gravel, clock,
  cell, page, text, rocket, hubble_deep_field, immunohistochemistry, retina;
- PyWavelets ``pywt.data``: aero, ascent (its camera is scikit-image's);
- Matplotlib ``sample_data``: grace_hopper.jpg.

Left out: the evaluation photos coins, moon, astronaut, coffee, chelsea (= cat), and the synthetic images
(binary_blobs, checkerboard, colorwheel, logo, horse, shepp_logan_phantom, microaneurysms at 102x102). Each image
is converted to grey (ITU-R 601 luma), centre-cropped to a square and resized to 256x256 (the evaluation scale,
:func:`genprior_jax.data.skimage_image`'s rule); images whose shorter side is at least 512 pixels also give the
four 256x256 quarters of their 512x512 resize (the same scenes at twice the scale). The images' pixels are
freely usable (their packages' licences).

Then::

    genprior-jax train diffusion --data data/photos-train --gray --size 256x256 --out priors/diffusion-photo
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from genprior_jax.data import crop_resize, read_image, skimage_image, to_gray  # noqa: E402

SKIMAGE = ("camera", "brick", "grass", "gravel", "clock", "cell", "page", "text", "rocket", "hubble_deep_field",
           "immunohistochemistry", "retina")
PYWT = ("aero", "ascent")
MATPLOTLIB = ("grace_hopper.jpg",)


def photos() -> list[tuple[str, np.ndarray]]:
    """``[(name, image (H, W, C) float32 in [0, 1])]`` of every training photo, native size (8-bit pixels / 255)."""
    import matplotlib
    import pywt.data

    out = [(f"skimage-{n}", skimage_image(n)) for n in SKIMAGE]
    out += [(f"pywt-{n}", np.asarray(getattr(pywt.data, n)(), np.float32)[..., None] / 255.0) for n in PYWT]
    out += [(f"matplotlib-{n.split('.')[0]}", read_image(os.path.join(matplotlib.get_data_path(), "sample_data", n)))
            for n in MATPLOTLIB]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/photos-train", help="folder to write the PNGs into")
    args = ap.parse_args()
    from PIL import Image

    os.makedirs(args.out, exist_ok=True)
    count = 0
    for name, img in photos():
        grey = to_gray(img)
        tiles = [("256", crop_resize(grey, (256, 256)))]
        if min(img.shape[:2]) >= 512:
            big = crop_resize(grey, (512, 512))
            tiles += [(f"512q{i}{j}", big[i * 256:(i + 1) * 256, j * 256:(j + 1) * 256])
                      for i in (0, 1) for j in (0, 1)]
        for tag, t in tiles:
            path = os.path.join(args.out, f"{name}-{tag}.png")
            Image.fromarray(np.round(np.clip(t[..., 0], 0, 1) * 255).astype(np.uint8)).save(path)
            count += 1
    print(f"wrote {count} grey 256x256 images to {args.out}")


if __name__ == "__main__":
    main()
