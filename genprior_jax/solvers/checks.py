"""Argument checks every solver wrapper shares: hyper-parameters are finite and in range before anything runs."""

from __future__ import annotations

from typing import Any, NamedTuple

from ..operators.validation import check_number


def check_hyper(hyper: NamedTuple, who: str, *, positive: tuple[str, ...] = (),
                any_sign: tuple[str, ...] = ()) -> None:
    """``ValueError`` naming the field, the value and the valid range unless every concrete field of ``hyper`` is
    finite and ``>= 0`` (``> 0`` for the names in ``positive``; any finite value for those in ``any_sign``)."""
    for name, value in zip(hyper._fields, hyper, strict=True):
        if name in any_sign:
            _finite(value, name, who)
        else:
            check_number(value, name, who, positive=name in positive)


def _finite(value: Any, name: str, who: str) -> None:
    try:
        check_number(abs(value), name, who)
    except TypeError:
        check_number(value, name, who)
