"""An opt-in on-disk cache of contraction trees, so an expensive search runs once.

Trees are keyed by the network's label-independent canonical form (index ids numbered
by first appearance, their sizes, the output) plus the search options: the same
structure finds its tree whatever its labels are called.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
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
        """Store ``tree`` under ``key``: written to a temporary file of this call's own,
        then renamed into place, so that threads and processes storing the same key at
        once neither collide nor leave a partly written file for a reader."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.directory / f"{key}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            tmp.write_text(json.dumps(tree.to_dict()))
            tmp.replace(self._path(key))
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
