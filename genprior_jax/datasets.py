"""Training data from a spec: ``load_dataset("faces/", size=(64, 64))`` -> train / validation arrays.

Specs (``genprior-jax train ... --data SPEC``):

- ``mnist``: the embedded digits (train 4,000 / validation 500 of :mod:`genprior_jax.data`'s fixed split);
- a directory: every image file below it, recursively (:data:`~genprior_jax.data.IMAGE_SUFFIXES`: PNG, JPEG, TIFF,
  PGM / PPM, BMP; 8 or 16 bit, grey or colour), read by :func:`~genprior_jax.data.read_image`, sorted by path;
- ``*.npy`` / ``*.npz``: an array ``(N, H, W)`` or ``(N, H, W, C)`` (``uint8`` / ``uint16`` scaled by their range,
  floats must lie in ``[0, 1]``); an ``.npz`` holds it under ``images``, ``x`` or as its only array;
- ``tfds:NAME[:SPLIT]``: a TensorFlow Datasets image dataset through ``tfds.data_source`` (split ``train`` by
  default; needs it downloaded or prepared).

``size = (H, W)`` centre-crops every image to the aspect ratio ``H : W`` and resizes it with an anti-aliased
Lanczos filter; without ``size`` all images must share one size. ``gray`` converts colour to grey (ITU-R 601 luma).
The split is deterministic: a permutation of the ``N`` images by ``numpy.random.default_rng(seed)``, the first
``round(validation * N)`` (at least 1) for validation. :attr:`ImageDataset.info` records spec, sizes, counts and
seed; training writes it into the checkpoint. Images are held in memory as float32 (``N H W C`` x 4 bytes:
64x64 RGB is 48 kB per image, 20,000 images ~1 GB).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, NamedTuple, cast

import numpy as np

from .data import SPLITS, crop_resize, image_files, load_mnist, read_image, to_gray

__all__ = ["ImageDataset", "load_dataset", "parse_size"]


class ImageDataset(NamedTuple):
    """``train (N_t, H, W, C)`` and ``validation (N_v, H, W, C)`` float32 in ``[0, 1]``, and ``info`` (spec,
    image_shape, num_images, num_train, num_validation, split_seed, validation, size, gray)."""

    train: np.ndarray
    validation: np.ndarray
    info: dict[str, Any]


def parse_size(text: str | Sequence[int] | None) -> tuple[int, int] | None:
    """``"64x48"`` or ``(64, 48)`` -> ``(64, 48)``; ``None`` stays ``None``."""
    if text is None:
        return None
    if isinstance(text, str):
        h, sep, w = text.lower().partition("x")
        if not sep or not h.isdigit() or not w.isdigit():
            raise ValueError(f"size: expected HxW with positive integers, e.g. 64x64, got {text!r}")
        size = (int(h), int(w))
    else:
        size = tuple(int(s) for s in text)  # type: ignore[assignment]
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"size: expected (H, W) with positive integers, got {text!r}")
    return size


def _read_folder(root: str, gray: bool) -> tuple[list[np.ndarray], list[str]]:
    files = image_files(root)
    images = [read_image(f, gray) for f in files]  # read_image names an unreadable file in its ValueError
    channels: dict[int, str] = {}
    for f, img in zip(files, images, strict=True):
        channels.setdefault(int(img.shape[-1]), f)
    if len(channels) > 1:
        which = ", ".join(f"{c} in {os.path.relpath(f, root)!r}" for c, f in sorted(channels.items()))
        raise ValueError(f"data {root!r}: mixed channel counts ({which}); pass gray=True (--gray) to make every "
                         "image grey, or keep one kind of image in the folder")
    return images, [os.path.relpath(f, root) for f in files]


def _as_unit_float(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if not np.issubdtype(arr.dtype, np.floating):
        raise ValueError(f"data {where!r}: expected uint8, uint16 or float images, got dtype {arr.dtype}")
    arr = arr.astype(np.float32)
    if not np.all(np.isfinite(arr)) or arr.min(initial=0) < 0 or arr.max(initial=0) > 1:
        raise ValueError(f"data {where!r}: expected finite float images in [0, 1], got values in "
                         f"[{np.nanmin(arr):g}, {np.nanmax(arr):g}]" + ("" if np.all(np.isfinite(arr)) else
                                                                       " and NaN or inf"))
    return arr


def _read_array(path: str) -> np.ndarray:
    if path.endswith(".npz"):
        with np.load(path) as z:
            keys = list(z.keys())
            key = next((k for k in ("images", "x") if k in keys), keys[0] if len(keys) == 1 else None)
            if key is None:
                raise ValueError(f"data {path!r}: expected an array named 'images' or 'x' (or a single array), got "
                                 f"{keys}")
            arr = np.asarray(z[key])
    else:
        arr = np.load(path, allow_pickle=False)
    return _image_array(arr, path)


def _image_array(arr: np.ndarray, where: str) -> np.ndarray:
    """``(N, H, W)`` or ``(N, H, W, C)`` images (an alpha channel dropped) as float32 ``(N, H, W, C)`` in [0, 1]."""
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4):
        raise ValueError(f"data {where!r}: expected an array (N, H, W) or (N, H, W, C) with C in 1, 3, 4; got shape "
                         f"{arr.shape}")
    return _as_unit_float(arr[..., :3], where)


def _read_tfds(spec: str) -> np.ndarray:
    import tensorflow_datasets as tfds

    from .data import DatasetUnavailableError

    _, name, split = (spec.split(":") + ["train"])[:3]
    if not name:
        raise ValueError(f"data {spec!r}: expected tfds:NAME[:SPLIT], e.g. tfds:mnist:train")
    try:
        source = cast(Sequence[Any], tfds.data_source(name, split=split))
    except Exception as err:  # noqa: BLE001 - re-raised with context
        raise DatasetUnavailableError(f"data {spec!r}: could not load TFDS dataset {name!r} split {split!r}: "
                                      f"{type(err).__name__}: {err}. Prepare it where there is network "
                                      "(tfds build), or export the images to a folder or an .npy file") from err
    if len(source) == 0:
        raise ValueError(f"data {spec!r}: the split is empty")
    if "image" not in source[0]:
        raise ValueError(f"data {spec!r}: expected an 'image' feature, got features {sorted(source[0])}")
    return _image_array(np.stack([np.asarray(source[i]["image"]) for i in range(len(source))]), spec)


def _all_images(spec: str, size: tuple[int, int] | None, gray: bool) -> tuple[np.ndarray, list[str] | None]:
    """Every image of a folder / array / TFDS spec as one array ``(N, H, W, C)`` (and the folder's file names)."""
    names: list[str] | None = None
    if spec.startswith("tfds:"):
        images: list[np.ndarray] | np.ndarray = _read_tfds(spec)
    elif os.path.isdir(spec):
        images, names = _read_folder(spec, gray)
    elif spec.endswith((".npy", ".npz")):
        if not os.path.isfile(spec):
            raise ValueError(f"data {spec!r}: no such file")
        images = _read_array(spec)
    else:
        raise ValueError(f"data: expected 'mnist', a folder of images, an .npy / .npz file or tfds:NAME[:SPLIT]; got "
                         f"{spec!r}" + ("" if os.path.exists(spec) else " (no such file or folder)"))
    if gray and names is None:  # arrays (a folder's files were read grey)
        images = [to_gray(img) for img in images]
    if size is not None:
        images = [crop_resize(img, size) for img in images]
    shapes: dict[tuple[int, ...], int] = {}
    for i, img in enumerate(images):
        shapes.setdefault(tuple(img.shape), i)
    if len(shapes) > 1:
        which = ", ".join(f"{s} ({names[i]!r})" if names else f"{s} (image {i})" for s, i in list(shapes.items())[:3])
        raise ValueError(f"data {spec!r}: images of different sizes: {which}; pass size=(H, W) (--size HxW) to "
                         "crop and resize them to one")
    arr = np.stack(images).astype(np.float32) if isinstance(images, list) else np.asarray(images, np.float32)
    return arr, names


def _mnist(split: str, size: tuple[int, int] | None) -> np.ndarray:
    """The embedded digits of ``split`` (grey already), resized to ``size`` when given."""
    images = load_mnist(split).images
    return images if size is None else np.stack([crop_resize(img, size) for img in images])


def load_dataset(spec: str, size: tuple[int, int] | str | None = None, gray: bool = False,
                 validation: float | str = 0.1, seed: int = 0) -> ImageDataset:
    """Images of ``spec`` (see the module docstring) split into train and validation sets.

    Args:
        spec: ``mnist``, a folder, an ``.npy`` / ``.npz`` file or ``tfds:NAME[:SPLIT]``.
        size: ``(H, W)`` or ``"HxW"``: centre crop to that aspect ratio and anti-aliased resize; ``None``: the
            images' own size (they must all share it).
        gray: convert colour images to grey.
        validation: fraction of the images held out for validation (ignored for ``mnist``: its fixed split), or a
            second spec whose images are the validation set (then every image of ``spec`` trains).
        seed: seed of the train / validation permutation.

    Raises ``ValueError`` naming the problem: an unknown spec, an empty folder, an unreadable file (named),
    mixed channel counts, images of different sizes without ``size``, fewer than 2 images.
    """
    size = parse_size(size)
    if isinstance(validation, str):
        train = _mnist("train", size) if spec == "mnist" else _all_images(spec, size, gray)[0]
        val = _mnist("validation", size) if validation == "mnist" else _all_images(validation, size, gray)[0]
        if val.shape[1:] != train.shape[1:]:
            raise ValueError(f"data: the validation images {validation!r} are {val.shape[1:]}, the training images "
                             f"{spec!r} {train.shape[1:]}; pass size=(H, W) (--size) or gray (--gray) for both")
        info = {"spec": spec, "image_shape": tuple(int(s) for s in train.shape[1:]),
                "num_images": len(train) + len(val), "num_train": len(train), "num_validation": len(val),
                "size": size, "gray": gray, "split": "given", "validation_spec": validation}
        return ImageDataset(train, val, info)
    if not 0.0 < validation < 1.0:
        raise ValueError(f"load_dataset: expected 0 < validation < 1 or a spec of validation images, got {validation}")
    if spec == "mnist":
        train, val = _mnist("train", size), _mnist("validation", size)
        split: dict[str, Any] = {"split": "embedded", "split_seed": 0, "train_range": SPLITS["train"],
                                 "validation_range": SPLITS["validation"]}
        image_shape = tuple(int(s) for s in train.shape[1:])
        info = {"spec": spec, "image_shape": image_shape, "num_images": len(train) + len(val),
                "num_train": len(train), "num_validation": len(val), "size": size, "gray": gray, **split}
        return ImageDataset(train, val, info)
    arr, names = _all_images(spec, size, gray)
    n = len(arr)
    if n < 2:
        raise ValueError(f"data {spec!r}: expected at least 2 images (one for training, one for validation), got {n}")
    n_val = min(n - 1, max(1, round(validation * n)))
    order = np.random.default_rng(seed).permutation(n)
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    info = {"spec": spec, "image_shape": tuple(int(s) for s in arr.shape[1:]), "num_images": n,
            "num_train": n - n_val, "num_validation": n_val, "size": size, "gray": gray, "split": "random",
            "split_seed": seed, "validation": validation}
    if names is not None:
        info["validation_files"] = [names[i] for i in val_idx]
    return ImageDataset(arr[train_idx], arr[val_idx], info)
