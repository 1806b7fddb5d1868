"""Measurement operators acting on one unbatched image ``(H, W, C)``, as pytrees: linear ones (with adjoints)
and non-linear ones (phase retrieval, one-bit, any JAX function)."""

from .base import Adjoint, Composed, LinearOperator, Operator, check_adjoint
from .blur import Blur, Downsample, gaussian_kernel, uniform_kernel
from .fourier import SubsampledFourier, as_complex, as_real, line_mask, variable_density_mask
from .masks import BoxMask, RandomMask
from .noise import GaussianNoise, measure, noise_std_for_norm
from .nonlinear import FunctionMeasurement, OneBit, PhaseRetrieval
from .numerics import frobenius_sq, operator_norm_sq, pinv
from .radon import Radon, fbp, ramp_filter
from .registry import EXAMPLES, OPERATORS, make_operator, parse_spec
from .simple import GaussianCS, Identity
from .structured import StructuredCS

__all__ = [
    "Adjoint", "Blur", "BoxMask", "Composed", "Downsample", "EXAMPLES", "FunctionMeasurement", "GaussianCS",
    "GaussianNoise", "Identity", "LinearOperator", "OPERATORS", "OneBit", "Operator", "PhaseRetrieval", "Radon",
    "RandomMask", "StructuredCS", "SubsampledFourier", "as_complex", "as_real", "check_adjoint", "fbp",
    "gaussian_kernel", "line_mask", "make_operator", "measure", "noise_std_for_norm", "parse_spec", "ramp_filter",
    "frobenius_sq", "operator_norm_sq", "pinv",
    "uniform_kernel", "variable_density_mask",
]
