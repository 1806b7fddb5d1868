"""Argument checks every solver wrapper shares: hyper-parameters are finite and in range before anything runs."""

from __future__ import annotations

from typing import NamedTuple

from ..operators.validation import check_number


def check_hyper(hyper: NamedTuple, who: str, *, positive: tuple[str, ...] = ()) -> None:
    """``ValueError`` naming the field, the value and the valid range unless every concrete field of ``hyper`` is
    finite and ``>= 0`` (``> 0`` for the names in ``positive``)."""
    for name, value in zip(hyper._fields, hyper, strict=True):
        check_number(value, name, who, positive=name in positive)
