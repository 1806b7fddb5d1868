"""Argument checks every solver wrapper shares: hyper-parameters are finite and in range before anything runs."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

from ..operators.validation import check_number


def check_hyper(hyper: NamedTuple, who: str, *, positive: tuple[str, ...] = ()) -> None:
    """``ValueError`` naming the field, the value and the valid range unless every concrete field of ``hyper`` is
    finite and ``>= 0`` (``> 0`` for the names in ``positive``)."""
    for name, value in zip(hyper._fields, hyper, strict=True):
        if isinstance(value, tuple):
            continue  # a nested model (the Bayesian methods' noise model) is checked by its own check
        check_number(value, name, who, positive=name in positive)


def renamed_kwargs(kwargs: dict[str, Any], renames: dict[str, str], who: str) -> dict[str, Any]:
    """Map deprecated keyword names to the vocabulary's (``{old: new}``), warning once per use.

    Returns a new dict with every old name replaced by its new one; a ``DeprecationWarning`` names both. Passing
    both the old and the new name is a ``ValueError``; any other unknown keyword is left for the caller to refuse
    (a ``TypeError`` from the wrapped call, as for a misspelt keyword).
    """
    out = dict(kwargs)
    for old, new in renames.items():
        if old in out:
            if new in out:
                raise ValueError(f"{who}: got both {old!r} and {new!r}; {old!r} is the deprecated name of {new!r}")
            warnings.warn(f"{who}: {old!r} is deprecated and will be removed in the next release; use {new!r}",
                          DeprecationWarning, stacklevel=3)
            out[new] = out.pop(old)
    return out


F = TypeVar("F", bound=Callable[..., Any])


def deprecated_kwargs(renames: dict[str, str], who: str) -> Callable[[F], F]:
    """Decorator: the wrapped function accepts the deprecated keyword names of ``renames`` (``{old: new}``) through
    :func:`renamed_kwargs` (a ``DeprecationWarning`` at the caller's line; old and new together: ``ValueError``).
    ``inspect.signature`` still shows the wrapped function's own keywords."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            return fn(*args, **renamed_kwargs(kwargs, renames, who))

        call.deprecated_renames = dict(renames)  # type: ignore[attr-defined]  # read by apply_deprecations
        return call  # type: ignore[return-value]

    return wrap


def deprecated_rescaled_kwargs(renames: dict[str, tuple[str, float]], who: str) -> Callable[[F], F]:
    """:func:`deprecated_kwargs` for a keyword whose scale changed with its name (``{old: (new, factor)}``):
    ``old=v`` is passed on as ``new=factor * v``, so a call written for the old name keeps its old result (e.g. a
    weight defined against the data term ``||A x - y||^2`` becomes half of itself against ``1/2 ||A x - y||^2``).
    The ``DeprecationWarning`` names the new keyword and the conversion; old and new together: ``ValueError``."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            for old, (new, factor) in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise ValueError(f"{who}: got both {old!r} and {new!r}; {old!r} is the deprecated name of "
                                         f"{new!r}")
                    warnings.warn(f"{who}: {old!r} is deprecated and will be removed in the next release; use "
                                  f"{new!r} = {factor:g} * {old} (the same objective, its data term now "
                                  "1/2 ||A x - y||^2)", DeprecationWarning, stacklevel=2)
                    kwargs[new] = factor * kwargs.pop(old)
            return fn(*args, **kwargs)

        call.deprecated_rescaled = dict(renames)  # type: ignore[attr-defined]  # read by apply_deprecations
        return call  # type: ignore[return-value]

    return wrap


def apply_deprecations(fn: Callable[..., Any], kwargs: dict[str, Any], who: str) -> dict[str, Any]:
    """The keywords ``kwargs`` for ``fn`` with every deprecated name that ``fn``'s :func:`deprecated_kwargs` /
    :func:`deprecated_rescaled_kwargs` decorators accept already converted (warning as they would), so a caller that
    reads the keywords itself (``gp.reconstruct``'s posterior summary and model-error fit) sees the new names."""
    out = dict(kwargs)
    seen: set[int] = set()
    f: Any = fn
    while f is not None and id(f) not in seen:  # decorators stack: walk the __wrapped__ chain
        seen.add(id(f))
        out = renamed_kwargs(out, getattr(f, "deprecated_renames", {}), who)
        for old, (new, factor) in getattr(f, "deprecated_rescaled", {}).items():
            if old in out:
                if new in out:
                    raise ValueError(f"{who}: got both {old!r} and {new!r}; {old!r} is the deprecated name of {new!r}")
                warnings.warn(f"{who}: {old!r} is deprecated and will be removed in the next release; use {new!r} = "
                              f"{factor:g} * {old} (the same objective, its data term now 1/2 ||A x - y||^2)",
                              DeprecationWarning, stacklevel=3)
                out[new] = factor * out.pop(old)
        f = getattr(f, "__wrapped__", None)
    return out
