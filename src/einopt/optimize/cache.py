"""An opt-in on-disk cache of contraction trees, so an expensive search runs once.

Trees are keyed by the network's label-independent canonical form (index ids numbered
by first appearance, their sizes, the output) plus the search options: the same
structure finds its tree whatever its labels are called.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ..network import Network
from ..tree import ContractionTree

__all__ = ["TreeCache", "canonical_key"]


def canonical_key(network: Network, options: Any) -> str:
    """A hash of the network's structure (labels ignored) and the search ``options``."""
    text = repr((network.raw, network.sizes, network.output, options))
    return hashlib.sha256(text.encode()).hexdigest()


class TreeCache:
    """Trees found by earlier searches, one JSON file each under ``directory``."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> ContractionTree | None:
        try:
            return ContractionTree.from_dict(json.loads(self._path(key).read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, tree: ContractionTree) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self._path(key).with_suffix(".tmp")
        tmp.write_text(json.dumps(tree.to_dict()))
        tmp.replace(self._path(key))
