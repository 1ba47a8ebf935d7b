"""Stage 8: the public functions, the user's :class:`Plan`, and the plan caches.

Level 1 caches the parse of a subscripts string (:func:`einopt.parse.parse_cached`);
level 2 maps (equation, shapes, dtypes, options) to a :class:`Plan`
(:mod:`~einopt.api.planning`). Both are bounded LRUs keyed by the full tuple. A third,
tiny front table maps the exact call signature of numpy calls to the compiled program
(:mod:`~einopt.api.calls`), so a warm call costs one dict lookup and the kernel. Every
cache is registered in :mod:`einopt.caches`; :func:`clear_caches` empties them all.
"""

from .calls import einsum
from .handle import CACHE_SIZE, Plan, as_handle, clear_caches
from .planning import memory_form, plan

__all__ = ["einsum", "plan", "Plan", "as_handle", "clear_caches", "memory_form", "CACHE_SIZE"]
