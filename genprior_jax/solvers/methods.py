"""The method registry and its front door, re-exported from the modules that do each job (the names have always
been imported from here):

- :mod:`.registry`: :class:`Method`, :data:`METHODS`, :func:`get_method`, :func:`defaults` (what differs per
  method: its solver wrapper, Hyper, flags, posterior summary, run-option and derived defaults, model-error support);
- :mod:`.dispatch`: :func:`solve`, :func:`reconstruct` (``gp.reconstruct``), :class:`Reconstruction`;
- :mod:`.summaries`: the posterior summaries the entries carry;
- :mod:`.cli_flags`: :func:`cli_overrides`, the CLI's generic flags mapped onto each method's keywords.
"""

from __future__ import annotations

from .cli_flags import cli_overrides
from .dispatch import Reconstruction, reconstruct, solve
from .registry import BAYES, METHODS, Method, defaults, get_method
from .summaries import Summary, SummaryFn

__all__ = ["BAYES", "METHODS", "Method", "Reconstruction", "Summary", "SummaryFn", "cli_overrides", "defaults",
           "get_method", "reconstruct", "solve"]
