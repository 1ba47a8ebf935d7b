"""The array libraries the backend tests run on, each as a small adapter.

A library that is not installed is skipped with its reason, so a bare install still
passes and the test report says what did not run.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest


@dataclass(frozen=True)
class Lib:
    """How to move numpy data into a library's arrays and back."""

    name: str
    module: str
    to_lib: Callable[[np.ndarray], Any]
    to_numpy: Callable[[Any], np.ndarray]


def _torch(x: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.array(x))  # a writable copy, 0-d kept 0-d


def _torch_back(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy()


def _jax(x: np.ndarray) -> Any:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)  # float64 where enabled, as numpy

    return jnp.asarray(x)


def _cupy(x: np.ndarray) -> Any:
    import cupy

    return cupy.asarray(x)


def _dask(x: np.ndarray) -> Any:
    import dask.array as da

    return da.from_array(x, chunks=tuple(max(1, (d + 1) // 2) for d in x.shape) or ())


LIBS = {
    "torch": Lib("torch", "torch", _torch, _torch_back),
    "jax": Lib("jax", "jax", _jax, np.asarray),
    "cupy": Lib("cupy", "cupy", _cupy, lambda x: x.get()),
    "dask": Lib("dask", "dask.array", _dask, lambda x: np.asarray(x.compute())),
}


def available(name: str) -> bool:
    module = LIBS[name].module
    try:
        if importlib.util.find_spec(module.partition(".")[0]) is None:
            return False
        if name == "cupy":
            import cupy

            return cupy.cuda.runtime.getDeviceCount() > 0
        return True
    except Exception:
        return False


def lib_param(name: str) -> Any:
    """A pytest parameter for library ``name``, skipped when it cannot run here."""
    reason = f"{name} is not installed" + (" or no GPU is present" if name == "cupy" else "")
    return pytest.param(LIBS[name], id=name,
                        marks=pytest.mark.skipif(not available(name), reason=reason))


ALL_LIBS = [lib_param(n) for n in LIBS]
