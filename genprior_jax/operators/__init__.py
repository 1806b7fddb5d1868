"""Measurement operators acting on one unbatched image ``(H, W, C)``, as pytrees: linear ones (with adjoints)
and non-linear ones (phase retrieval, one-bit, any JAX function)."""

from .base import Adjoint, Composed, LinearOperator, Operator, check_adjoint
from .blur import Blur, Downsample, gaussian_kernel, uniform_kernel
from .fourier import SubsampledFourier, as_complex, as_real, line_mask, variable_density_mask
from .masks import BlockPixels, BoxMask, KeepPatch, RandomMask
from .measurement_model import MeasurementModel, parse_measurement
from .noise import GaussianNoise, LogisticNoise, NoiseModel, measure, noise_std_for_norm
from .nonlinear import FunctionMeasurement, OneBit, PhaseRetrieval
from .numerics import frobenius_sq, operator_norm_sq, pinv
from .radon import Radon, fbp, ramp_filter
from .registry import EXAMPLES, OPERATORS, make_operator, parse_spec
from .simple import GaussianCS, Identity
from .structured import StructuredCS

__all__ = [
    "Adjoint", "BlockPixels", "Blur", "BoxMask", "Composed", "Downsample", "EXAMPLES", "FunctionMeasurement",
    "GaussianCS", "GaussianNoise", "Identity", "KeepPatch", "LinearOperator", "LogisticNoise", "MeasurementModel",
    "NoiseModel", "OPERATORS", "OneBit", "Operator", "PhaseRetrieval", "Radon", "RandomMask", "StructuredCS",
    "SubsampledFourier", "as_complex", "as_real", "check_adjoint", "fbp", "frobenius_sq", "gaussian_kernel",
    "line_mask", "make_operator", "measure", "noise_std_for_norm", "operator_norm_sq", "parse_measurement",
    "parse_spec", "pinv", "ramp_filter", "uniform_kernel", "variable_density_mask",
]
