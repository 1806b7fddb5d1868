"""Untrained generators for Deep-Image-Prior recovery, and the learned weight prior of Van Veen et al. (2018).

An untrained generator ``G_w(z)`` is a network whose weights ``w`` are *fitted to one measurement* (see
:mod:`genprior_jax.solvers.dip`) from a random start, with a fixed random input ``z``. Its architecture is the
prior. Two architectures, in Flax, both mapping one input to one image ``(H, W, C)`` with values in ``[0, 1]``:

- ``"dcgan"``: at 28 x 28 the compsensing_dip repo's ``DCGAN_MNIST``; at any other size the DCGAN-style decoder
  below. ``DCGAN_MNIST``, with ``g = ngf`` and ``z`` of shape ``(z_dim,)`` read as a ``1 x 1 x z_dim`` map::

      conv 2x2 (pad 1) -> 8g @ 2x2,  norm, relu, up x2 -> 4x4
      conv 4x4 (pad 3) -> 4g @ 7x7,  norm, relu
      conv 3x3 (pad 1) -> 2g @ 7x7,  norm, relu, up x2 -> 14x14
      conv 3x3 (pad 1) ->  g @ 14x14, norm, relu, up x2 -> 28x28
      conv 3x3 (pad 1) ->  C @ 28x28, x = (tanh + 1) / 2

  The repo's stride-1 transposed convolutions are written as ordinary convolutions (the same family of maps:
  a stride-1 transposed convolution is a convolution with the flipped kernel and padding ``k - 1 - p``), with
  PyTorch's default ``ConvTranspose2d`` initialisation ``U(+-1/sqrt(C_out k^2))`` and no biases; "up" is
  nearest-neighbour upsampling; "norm" is :class:`ChannelNorm`, which is what the repo's ``BatchNorm2d`` in
  training mode computes on its batch of one image. The repo uses ``ngf = 64, z_dim = 128`` (2.7 M weights);
  the default here is ``ngf = 16`` (0.22 M weights): with the reference DIP settings it recovered 16 MNIST test
  digits *better* (per-pixel MSE 0.009 vs 0.045 at m = 100, 0.040 vs 0.125 at m = 50; the wider network fits
  the noise sooner) in 1/12 of the time on a CPU (``benchmarks/results/dip_check_ngf.md``).
  At other sizes (64 x 64 x 3 to 512 x 512 x 3 and odd sizes alike) the same kind of network, as the repo's
  larger ``DCGAN_XRAY`` grows to 256 x 256: spatial sizes ``H_0 .. H_u = H`` as the Deep Decoder's below with
  ``u`` the largest of ``0..6`` with ``4 * 2^u <= min(H, W)`` (:func:`default_dcgan_upsample`), a random input
  map ``z`` of shape ``(H_0, W_0, g)``, ``u + 1`` blocks ``conv 3x3 (pad 1) -> g 2^min(3, u - j) channels, norm,
  relu, nearest resize to the next size (all but the last block)``, then ``conv 3x3 -> C`` and ``(tanh + 1) / 2``
  (8g channels at the coarse end, g at full size; over-parameterised like every DIP network: the fit is
  stopped early, not regularised by size).
- ``"deep-decoder"``: Heckel & Hand (2019), at any ``H x W``. With the spatial sizes
  ``H_u = H, H_{j-1} = ceil(H_j / 2)`` (and ``W_j`` alike), input ``z`` of shape ``(H_0, W_0, k)`` and ``u + 1``
  blocks ``1x1 conv (k -> k) -> bilinear resize H_j x W_j -> H_{j+1} x W_{j+1} (all but the last block) -> relu
  -> norm``, then a ``1x1`` conv to ``C`` channels and a sigmoid. No biases; ``(u + 1) (k^2 + 2 k) + k C``
  weights (``3 k^2 + 6 k + k C`` for ``u = 2``). Where ``2^u`` divides ``H`` and ``W`` every resize is the paper's
  bilinear upsampling x2; at other sizes some stages resize ``n -> 2 n - 1`` instead, so the network generates
  the requested size exactly (no padding to a multiple of ``2^u`` and cropping: no pixels computed and thrown
  away, no border the fit never sees). It needs ``2^u <= min(H, W)`` (each stage then enlarges the image).
  Default sizes for an image (:func:`default_deep_decoder`): ``u`` the largest of ``0..5`` with
  ``7 * 2^u <= min(H, W)`` (an input of 7 to 13 pixels a side, 16 x 16 at 512 x 512 as in the paper's
  six-layer decoder), ``k`` the largest power of two in ``16..128`` with ``(u + 1) k^2 <= H W C / 8`` (a network
  with about 8 times fewer weights than the image has values, under-parameterised as the paper's: ``k = 128`` at
  512 x 512 x 3, 64 at 256 x 256 x 3, 16 at 28 x 28 and 64 x 64 x 3).

The DCGAN's convolutions are by default computed as one matrix product over ``k x k`` shifted copies of the input
(im2col, ``conv="im2col"``): under ``vmap`` over per-image weights this is a batched matrix product, where
``lax.conv`` (``conv="lax"``, the better choice on a GPU) becomes a grouped convolution that XLA runs several times
slower on a CPU (``benchmarks/dip_check.py --speed``).

The learned regularization (Van Veen et al. 2018, Sec. 3.2): the vector ``mu(w) = (mean(w_1), ..., mean(w_L))``
of the mean of each weight array (each leaf of the weight pytree, norm scales and offsets included, as in the
repo's ``layer_means``) is modelled as ``N(m, S)``, fitted (:func:`fit_weight_prior`) to the weights DIP reached
on training images; the penalty is the Mahalanobis distance ``(mu(w) - m)^T S^{-1} (mu(w) - m)``
(:func:`weight_penalty`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, Literal, NamedTuple, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from .base import Array, Params

GENERATORS = ("dcgan", "deep-decoder")
CONV_IMPLS = ("im2col", "lax")  # how the DCGAN's k x k convolutions are computed: see conv2d

_NORM_EPS = 1e-5  # PyTorch BatchNorm2d's eps


def _torch_uniform(fan: str) -> Callable[..., Array]:
    """PyTorch's default conv initialisation ``U(+-1/sqrt(fan))`` (``ConvTranspose2d``: fan_out)."""
    return nn.initializers.variance_scaling(1.0 / 3.0, cast(Literal["fan_in", "fan_out"], fan), "uniform")


def conv2d(x: Array, kernel: Array, padding: int, impl: str = "im2col") -> Array:
    """Cross-correlation of one image ``x`` ``(H, W, C_in)`` with ``kernel`` ``(k, k, C_in, C_out)``, zero
    padding ``padding`` on every side, stride 1: ``out[i, j] = sum_{a, b} x_pad[i + a, j + b] @ kernel[a, b]``,
    shape ``(H + 2 p - k + 1, W + 2 p - k + 1, C_out)``. ``impl="im2col"``: the ``k^2`` shifted copies
    ``x_pad[a:, b:]`` side by side (built in two passes, ``k`` shifts along ``W`` then ``k`` along ``H``: ``2 k``
    slices instead of ``k^2``, fewer operations for XLA to compile) and one matrix product (fast on a CPU under
    ``vmap`` over kernels); ``"lax"``: ``lax.conv_general_dilated`` (a grouped convolution under ``vmap``; the
    natural choice on a GPU)."""
    if impl == "lax":
        return jax.lax.conv_general_dilated(x[None], kernel, (1, 1), [(padding, padding)] * 2,
                                            dimension_numbers=("NHWC", "HWIO", "NHWC"))[0]
    k = kernel.shape[0]
    xp = jnp.pad(x, ((padding, padding), (padding, padding), (0, 0)))
    ho, wo = xp.shape[0] - k + 1, xp.shape[1] - k + 1
    cols = jnp.concatenate([xp[:, b:b + wo] for b in range(k)], axis=-1)  # (H_pad, wo, k C_in): (b, c)
    patches = jnp.concatenate([cols[a:a + ho] for a in range(k)], axis=-1)  # (ho, wo, k^2 C_in): (a, b, c)
    out = patches.reshape(ho * wo, -1) @ kernel.reshape(-1, kernel.shape[-1])
    return out.reshape(ho, wo, kernel.shape[-1])


class Conv(nn.Module):
    """Bias-free stride-1 convolution of one ``(H, W, C_in)`` image (see :func:`conv2d`)."""

    features: int
    kernel_size: int
    padding: int
    fan: str = "fan_out"
    impl: str = "im2col"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k = self.kernel_size
        kernel = self.param("kernel", _torch_uniform(self.fan), (k, k, x.shape[-1], self.features))
        if k == 1 and self.padding == 0:
            return x @ kernel[0, 0]
        return conv2d(x, kernel, self.padding, self.impl)


class ChannelNorm(nn.Module):
    """Per-channel normalisation over the spatial axes with a learned affine map:
    ``(h - mean_hw) / sqrt(var_hw + 1e-5) * scale + offset`` (BatchNorm on a batch of one image)."""

    @nn.compact
    def __call__(self, h: Array) -> Array:
        c = h.shape[-1]
        mean = jnp.mean(h, axis=(0, 1))
        var = jnp.mean((h - mean) ** 2, axis=(0, 1))
        scale = self.param("scale", nn.initializers.ones, (c,))
        offset = self.param("offset", nn.initializers.zeros, (c,))
        return (h - mean) * jax.lax.rsqrt(var + _NORM_EPS) * scale + offset


def _upsample_nearest(h: Array) -> Array:
    return jnp.repeat(jnp.repeat(h, 2, axis=0), 2, axis=1)


def _resize_bilinear(h: Array, size: tuple[int, int]) -> Array:
    return jax.image.resize(h, (*size, h.shape[2]), "bilinear")


def deep_decoder_sizes(n: int, num_upsample: int) -> tuple[int, ...]:
    """The Deep Decoder's spatial sizes along one axis, input first: ``(n_0, ..., n_u)`` with ``n_u = n`` and
    ``n_{j-1} = ceil(n_j / 2)`` (``n / 2^(u - j)`` where ``2^u`` divides ``n``)."""
    sizes = [int(n)]
    for _ in range(num_upsample):
        sizes.append(-(-sizes[-1] // 2))
    return tuple(reversed(sizes))


class DCGANGenerator(nn.Module):
    """The compsensing_dip ``DCGAN_MNIST`` generator: ``(z_dim,) -> (28, 28, channels)`` (module docstring)."""

    ngf: int = 16
    channels: int = 1
    conv: str = "im2col"

    @nn.compact
    def __call__(self, z: Array) -> Array:
        g, impl = self.ngf, self.conv
        h = z.reshape(1, 1, -1)
        h = _upsample_nearest(nn.relu(ChannelNorm()(Conv(8 * g, 2, 1, impl=impl)(h))))
        h = nn.relu(ChannelNorm()(Conv(4 * g, 4, 3, impl=impl)(h)))
        h = _upsample_nearest(nn.relu(ChannelNorm()(Conv(2 * g, 3, 1, impl=impl)(h))))
        h = _upsample_nearest(nn.relu(ChannelNorm()(Conv(g, 3, 1, impl=impl)(h))))
        return 0.5 * (jnp.tanh(Conv(self.channels, 3, 1, impl=impl)(h)) + 1.0)


class DCGANDecoder(nn.Module):
    """The DCGAN-style DIP generator at any size: ``(H_0, W_0, ngf) -> (H, W, channels)`` (module docstring)."""

    ngf: int = 16
    channels: int = 1
    num_upsample: int = 6
    image_hw: tuple[int, int] = (256, 256)
    conv: str = "im2col"

    @nn.compact
    def __call__(self, z: Array) -> Array:
        u, g, impl = self.num_upsample, self.ngf, self.conv
        sizes = list(zip(deep_decoder_sizes(self.image_hw[0], u), deep_decoder_sizes(self.image_hw[1], u)))
        if tuple(z.shape[:2]) != sizes[0]:
            raise ValueError(f"DCGANDecoder: expected an input of spatial size {sizes[0]}, got {tuple(z.shape[:2])}")
        h = z
        for j in range(u + 1):
            h = nn.relu(ChannelNorm()(Conv(g * 2 ** min(3, u - j), 3, 1, impl=impl)(h)))
            if j < u:
                h = jax.image.resize(h, (*sizes[j + 1], h.shape[2]), "nearest")
        return 0.5 * (jnp.tanh(Conv(self.channels, 3, 1, impl=impl)(h)) + 1.0)


def default_dcgan_upsample(image_shape: tuple[int, int, int]) -> int:
    """``u`` of the DCGAN-style decoder (sizes other than 28 x 28): the largest of ``0..6`` with
    ``4 * 2^u <= min(H, W)`` (an input of 4 to 7 pixels a side; 8 x 8 at 512 x 512)."""
    u = 0
    while u < 6 and 4 * 2 ** (u + 1) <= min(image_shape[:2]):
        u += 1
    return u


class DeepDecoder(nn.Module):
    """Heckel & Hand's deep decoder: ``(H_0, W_0, k) -> (H, W, channels)`` (module docstring); ``image_hw`` is
    ``(H, W)``, None for ``2^u`` times the input's size."""

    width: int = 16
    num_upsample: int = 2
    channels: int = 1
    image_hw: tuple[int, int] | None = None

    @nn.compact
    def __call__(self, z: Array) -> Array:
        u = self.num_upsample
        hw = self.image_hw if self.image_hw is not None else (z.shape[0] * 2**u, z.shape[1] * 2**u)
        sizes = list(zip(deep_decoder_sizes(hw[0], u), deep_decoder_sizes(hw[1], u)))
        if tuple(z.shape[:2]) != sizes[0]:
            raise ValueError(f"DeepDecoder: expected an input of spatial size {sizes[0]} for {hw[0]} x {hw[1]} "
                             f"images and num_upsample = {u}, got {tuple(z.shape[:2])}")
        h = z
        for i in range(u + 1):
            h = Conv(self.width, 1, 0, fan="fan_in")(h)
            if i < u:
                h = _resize_bilinear(h, sizes[i + 1])
            h = ChannelNorm()(nn.relu(h))
        return nn.sigmoid(Conv(self.channels, 1, 0, fan="fan_in")(h))


@dataclasses.dataclass(frozen=True)
class UntrainedGenerator:
    """An untrained generator: ``init(key) -> weights`` and ``generate(weights, z) -> x`` (``x`` of shape
    ``image_shape`` in ``[0, 1]``, ``z`` of shape ``latent_shape``); pure functions with static shapes. Built by
    :func:`untrained_generator`, which caches one object per configuration (solvers key their compilation on it).
    """

    name: str
    latent_shape: tuple[int, ...]
    image_shape: tuple[int, int, int]
    init: Callable[[Array], Params]
    generate: Callable[[Params, Array], Array]
    config: tuple[tuple[str, int | str], ...] = ()

    def num_weights(self) -> int:
        shapes = jax.eval_shape(self.init, jax.random.key(0))
        return sum(int(np.prod(s.shape)) for s in jax.tree_util.tree_leaves(shapes))


def _check_positive(name: str, value: Any, what: str) -> int:
    if int(value) != value or int(value) < 1:
        raise ValueError(f"{what}: expected a positive integer {name}, got {value!r}")
    return int(value)


def _uniform_init(module: nn.Module, latent_shape: tuple[int, ...], fan: str) -> Callable[[Array], Params]:
    """``init(key)``: the module's parameters with every conv kernel ``U(+-1/sqrt(fan))`` (as the modules'
    initialisers), norm scales 1 and offsets 0, drawn from *one* uniform vector: a random-number kernel per
    parameter array would double the XLA compile time of a DIP solve."""
    shapes = jax.eval_shape(module.init, jax.random.key(0), jax.ShapeDtypeStruct(latent_shape, jnp.float32))["params"]
    paths, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    kinds = [str(getattr(path[-1], "key", path[-1])) for path, _ in paths]
    sizes = [math.prod(leaf.shape) for _, leaf in paths]

    def init(key: Array) -> Params:
        u = jax.random.uniform(key, (sum(n for n, k in zip(sizes, kinds) if k == "kernel"),), jnp.float32, -1.0, 1.0)
        leaves, offset = [], 0
        for (_, leaf), kind, n in zip(paths, kinds, sizes):
            if kind == "kernel":
                kh, kw, c_in, c_out = leaf.shape
                bound = 1.0 / math.sqrt(kh * kw * (c_out if fan == "fan_out" else c_in))
                leaves.append(bound * u[offset:offset + n].reshape(leaf.shape))
                offset += n
            else:
                leaves.append(jnp.full(leaf.shape, 1.0 if kind == "scale" else 0.0, jnp.float32))
        return jax.tree_util.tree_unflatten(treedef, leaves)

    return init


@functools.cache
def _build(name: str, image_shape: tuple[int, int, int], sizes: tuple[tuple[str, int | str], ...]
           ) -> UntrainedGenerator:
    cfg: dict[str, Any] = dict(sizes)
    h, w, c = image_shape
    if name == "dcgan" and (h, w) == (28, 28):
        module: nn.Module = DCGANGenerator(ngf=cfg["ngf"], channels=c, conv=str(cfg["conv"]))
        latent_shape: tuple[int, ...] = (cfg["z_dim"],)
    elif name == "dcgan":
        u = int(cfg["num_upsample"])
        module = DCGANDecoder(ngf=cfg["ngf"], channels=c, num_upsample=u, image_hw=(h, w), conv=str(cfg["conv"]))
        latent_shape = (deep_decoder_sizes(h, u)[0], deep_decoder_sizes(w, u)[0], cfg["ngf"])
    else:
        u = int(cfg["num_upsample"])
        module = DeepDecoder(width=cfg["width"], num_upsample=u, channels=c, image_hw=(h, w))
        latent_shape = (deep_decoder_sizes(h, u)[0], deep_decoder_sizes(w, u)[0], cfg["width"])

    init = _uniform_init(module, latent_shape, "fan_out" if name == "dcgan" else "fan_in")

    def generate(weights: Params, z: Array) -> Array:
        return cast(Array, module.apply({"params": weights}, z))

    return UntrainedGenerator(name, latent_shape, image_shape, init, generate, sizes)


class DeepDecoderSize(NamedTuple):
    """The Deep Decoder's channels ``k`` (``width``) and number of upsampling stages ``u`` (``num_upsample``)."""

    width: int
    num_upsample: int


_DD_MIN_INPUT = 7  # default u: the input keeps at least 7 pixels a side ...
_DD_MAX_UPSAMPLE = 5  # ... and at most 5 upsamplings (16 x 16 -> 512 x 512, Heckel & Hand's six layers)
_DD_WIDTHS = (128, 64, 32, 16)  # default k: the widest with (u + 1) k^2 <= H W C / _DD_VALUES_PER_WEIGHT
_DD_VALUES_PER_WEIGHT = 8


def _default_width(image_shape: tuple[int, int, int], num_upsample: int) -> int:
    values = math.prod(image_shape)
    return next((k for k in _DD_WIDTHS if (num_upsample + 1) * k * k * _DD_VALUES_PER_WEIGHT <= values),
                _DD_WIDTHS[-1])


def default_deep_decoder(image_shape: tuple[int, int, int]) -> DeepDecoderSize:
    """Default Deep Decoder sizes for images of ``image_shape = (H, W, C)`` (module docstring): ``num_upsample``
    ``u`` the largest of ``0..5`` with ``7 * 2^u <= min(H, W)``; ``width`` ``k`` the largest of 128, 64, 32, 16
    with ``(u + 1) k^2 <= H W C / 8`` (16 if none). E.g. 28 x 28 x 1: ``(16, 2)``; 64 x 64 x 3: ``(16, 3)``;
    256 x 256 x 3: ``(64, 5)``; 512 x 512 x 3: ``(128, 5)``.

    >>> default_deep_decoder((28, 28, 1)), default_deep_decoder((512, 512, 3))
    (DeepDecoderSize(width=16, num_upsample=2), DeepDecoderSize(width=128, num_upsample=5))
    """
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"default_deep_decoder: expected image_shape (H, W, C), got {tuple(image_shape)}")
    u = 0
    while u < _DD_MAX_UPSAMPLE and _DD_MIN_INPUT * 2 ** (u + 1) <= min(shape[:2]):
        u += 1
    return DeepDecoderSize(_default_width(shape, u), u)  # type: ignore[arg-type]


def untrained_generator(name: str = "dcgan", image_shape: tuple[int, int, int] = (28, 28, 1), *,
                        ngf: int = 16, z_dim: int = 128, width: int | None = None, num_upsample: int | None = None,
                        conv: str = "im2col") -> UntrainedGenerator:
    """The untrained generator ``name`` (one of :data:`GENERATORS`) for images of ``image_shape``.

    ``"dcgan"`` uses ``ngf``, ``z_dim`` and ``conv`` (:data:`CONV_IMPLS`, see :func:`conv2d`): ``DCGAN_MNIST`` at
    28 x 28, the DCGAN-style decoder (input a ``(H_0, W_0, ngf)`` map; ``z_dim`` unused) at other sizes;
    ``"deep-decoder"`` uses ``width`` (channels ``k``) and ``num_upsample``
    (``u``), each :func:`default_deep_decoder` ``(image_shape)`` where None (the default ``k`` for the given
    ``u`` where only ``u`` is given), at any ``H x W`` with ``2^u <= min(H, W)``.
    Cached: the same arguments give the same object.
    """
    if name not in GENERATORS:
        raise ValueError(f"unknown untrained generator {name!r}; expected one of {GENERATORS}")
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"untrained_generator: expected image_shape (H, W, C), got {tuple(image_shape)}")
    if name == "dcgan":
        if conv not in CONV_IMPLS:
            raise ValueError(f"untrained_generator('dcgan'): unknown conv {conv!r}; expected one of {CONV_IMPLS}")
        if min(shape[:2]) < 4:
            raise ValueError(f"untrained_generator('dcgan'): expected images of at least 4 x 4 pixels, got {shape}")
        g, zd = _check_positive("ngf", ngf, name), _check_positive("z_dim", z_dim, name)
        if shape[:2] == (28, 28):
            sizes = (("ngf", g), ("z_dim", zd), ("conv", conv))
        else:  # the DCGAN-style decoder; z_dim does not apply (its input is a map)
            sizes = (("ngf", g), ("conv", conv), ("num_upsample", default_dcgan_upsample(shape)))
    else:
        if num_upsample is None:
            u = default_deep_decoder(shape).num_upsample  # type: ignore[arg-type]
        else:
            u = int(num_upsample)
            if u != num_upsample or u < 0:
                raise ValueError(f"untrained_generator('deep-decoder'): expected an integer num_upsample >= 0, "
                                 f"got {num_upsample!r}")
        if 2**u > min(shape[:2]):
            raise ValueError(f"untrained_generator('deep-decoder'): expected 2^num_upsample <= min(H, W) (every "
                             f"stage upsamples), got 2^{u} = {2**u} for image_shape {shape}")
        k = _default_width(shape, u) if width is None else width  # type: ignore[arg-type]
        sizes = (("width", _check_positive("width", k, name)), ("num_upsample", u))
    return _build(name, shape, sizes)  # type: ignore[arg-type]


# -- the learned weight prior ------------------------------------------------------------------------------------

class WeightPrior(NamedTuple):
    """Gaussian ``N(mean, cov)`` on the per-array weight means :func:`layer_means` (``L`` = number of weight
    arrays); ``precision = cov^{-1}``."""

    mean: Array  # (L,)
    cov: Array  # (L, L)
    precision: Array  # (L, L)


def layer_means(weights: Params) -> Array:
    """``(L,)``: the mean of each weight array (leaf of ``weights``, in ``jax.tree_util`` order)."""
    return jnp.stack([jnp.mean(leaf) for leaf in jax.tree_util.tree_leaves(weights)])


def check_weight_prior(prior: WeightPrior, num: int, what: str = "weight_penalty") -> None:
    """Raise ``ValueError`` unless ``prior`` is a :class:`WeightPrior` over ``num`` weight arrays."""
    if not isinstance(prior, WeightPrior):
        raise ValueError(f"{what}: expected a WeightPrior, got {type(prior).__name__}")
    shapes = tuple(tuple(np.shape(a)) for a in prior)
    if shapes != ((num,), (num, num), (num, num)):
        raise ValueError(f"{what}: expected a WeightPrior over {num} weight arrays (mean ({num},), cov and "
                         f"precision ({num}, {num})), got shapes {shapes}")


def weight_penalty(weights: Params, prior: WeightPrior) -> Array:
    """Mahalanobis penalty ``(mu(w) - m)^T S^{-1} (mu(w) - m)`` with ``mu(w) =`` :func:`layer_means` ``(w)``."""
    check_weight_prior(prior, len(jax.tree_util.tree_leaves(weights)))
    d = layer_means(weights) - prior.mean
    return d @ prior.precision @ d


def fit_weight_prior(weights: Params, *, shrinkage: float = 0.0, ridge: float = 1e-3) -> WeightPrior:
    """Fit :class:`WeightPrior` to ``N`` sets of weights (a weight pytree whose leaves carry a leading axis ``N``,
    e.g. ``dip(...).state.weights`` on ``N`` training images).

    With ``F`` the ``(N, L)`` matrix of :func:`layer_means`: ``mean = F.mean(0)``; ``C`` the sample covariance
    (``ddof = 1``, ``np.cov``); ``cov = (1 - shrinkage) C + shrinkage diag(C) + ridge * tr(C) / L * I`` (the two
    regularisers make ``cov`` invertible when ``N <= L``, the usual case); ``precision = cov^{-1}``.
    """
    leaves = jax.tree_util.tree_leaves(weights)
    if not leaves or any(np.ndim(a) < 1 for a in leaves) or len({np.shape(a)[0] for a in leaves}) != 1:
        raise ValueError(f"fit_weight_prior: expected weight arrays with a common leading axis N, got shapes "
                         f"{[np.shape(a) for a in leaves]}")
    if not 0.0 <= shrinkage <= 1.0 or ridge < 0.0:
        raise ValueError(f"fit_weight_prior: expected 0 <= shrinkage <= 1 and ridge >= 0, got {shrinkage}, {ridge}")
    feats = np.stack([np.asarray(a, np.float64).reshape(a.shape[0], -1).mean(axis=1) for a in leaves], axis=1)
    n, num = feats.shape
    if n < 2:
        raise ValueError(f"fit_weight_prior: expected weights from N >= 2 runs, got N = {n}")
    if not np.all(np.isfinite(feats)):
        raise ValueError("fit_weight_prior: expected finite weights, got non-finite values (a diverged run?)")
    mean = feats.mean(axis=0)
    c = np.atleast_2d(np.cov(feats, rowvar=False, ddof=1))
    cov = (1.0 - shrinkage) * c + shrinkage * np.diag(np.diag(c)) + ridge * np.trace(c) / num * np.eye(num)
    try:
        precision = np.linalg.inv(cov)
    except np.linalg.LinAlgError:
        raise ValueError("fit_weight_prior: the covariance is singular; use shrinkage > 0 or ridge > 0") from None
    if not np.all(np.isfinite(precision)):
        raise ValueError("fit_weight_prior: the covariance is singular; use shrinkage > 0 or ridge > 0")
    return WeightPrior(jnp.asarray(mean, jnp.float32), jnp.asarray(cov, jnp.float32),
                       jnp.asarray(precision, jnp.float32))
