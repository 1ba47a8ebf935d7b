"""A pytest plugin that routes other libraries' einsum entry points through einopt.

Loaded with ``-p einopt_drop_in`` (this folder on ``sys.path``), it replaces
``numpy.einsum``, ``numpy.einsum_path`` and opt_einsum's ``contract``,
``contract_path`` and ``contract_expression`` by einopt's before any test module is
imported, so those libraries' own test suites run against einopt. Only calls that pass
``optimize=False`` explicitly stay on the originals (the suites use them as their
reference); every other call, numpy's default included, runs on einopt.
"""

from __future__ import annotations

import functools
from typing import Any

ORIGINALS: dict[str, Any] = {}


def _route(original: Any, replacement: Any) -> Any:
    @functools.wraps(original)
    def call(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("optimize", None) is False:
            return original(*args, **kwargs)
        return replacement(*args, **kwargs)

    call.__wrapped_by_einopt__ = True  # type: ignore[attr-defined]
    return call


def pytest_configure(config: Any) -> None:
    import numpy as np

    import einopt

    ORIGINALS["numpy.einsum"] = np.einsum
    np.einsum = _route(np.einsum, einopt.einsum)
    if hasattr(einopt, "einsum_path"):
        ORIGINALS["numpy.einsum_path"] = np.einsum_path
        np.einsum_path = _route(np.einsum_path, einopt.einsum_path)
    try:
        import opt_einsum
    except ImportError:
        return
    for name in ("contract", "contract_path", "contract_expression"):
        original = getattr(opt_einsum, name)
        ORIGINALS[f"opt_einsum.{name}"] = original
        setattr(opt_einsum, name, _route(original, getattr(einopt, name)))
    if hasattr(einopt, "shared_intermediates"):
        # Sharing contexts are einopt's too (contract runs on einopt), and opt_einsum's
        # own sharing helpers read einopt's contexts, so both see one cache.
        import opt_einsum.sharing

        from einopt.run import sharing

        ORIGINALS["opt_einsum.shared_intermediates"] = opt_einsum.shared_intermediates
        opt_einsum.shared_intermediates = einopt.shared_intermediates
        for name in ("shared_intermediates", "currently_sharing", "get_sharing_cache",
                     "count_cached_ops"):
            ORIGINALS[f"opt_einsum.sharing.{name}"] = getattr(opt_einsum.sharing, name)
            setattr(opt_einsum.sharing, name, getattr(sharing, name))


def pytest_unconfigure(config: Any) -> None:
    import importlib

    import numpy as np

    for key, original in ORIGINALS.items():
        module, _, name = key.rpartition(".")
        setattr(np if module == "numpy" else importlib.import_module(module), name, original)
    ORIGINALS.clear()
