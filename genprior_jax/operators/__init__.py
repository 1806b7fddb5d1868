"""Linear measurement operators acting on one unbatched image ``(H, W, C)``, as pytrees."""

from .base import Adjoint, Composed, LinearOperator, check_adjoint
from .blur import Blur, Downsample, gaussian_kernel, uniform_kernel
from .masks import BoxMask, RandomMask
from .noise import GaussianNoise, measure, noise_std_for_norm
from .registry import EXAMPLES, OPERATORS, make_operator, parse_spec
from .simple import GaussianCS, Identity

__all__ = [
    "Adjoint", "Blur", "BoxMask", "Composed", "Downsample", "EXAMPLES", "GaussianCS", "GaussianNoise",
    "Identity", "LinearOperator", "OPERATORS", "RandomMask", "check_adjoint", "gaussian_kernel",
    "make_operator", "measure", "noise_std_for_norm", "parse_spec", "uniform_kernel",
]
