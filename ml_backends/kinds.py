"""Which catalog model kinds each ``plantai serve BACKEND`` serves (light: the CLI imports it to list them)."""

from __future__ import annotations

from collections.abc import Mapping

ALL_KINDS = frozenset({"detect-nonvegetal", "detect-organs", "segment-plant", "classify-trait"})
BACKEND_KINDS: Mapping[str, frozenset[str]] = {
    "nonvegetal": frozenset({"detect-nonvegetal"}),
    "organs": frozenset({"detect-organs"}),
    "segmentation": frozenset({"segment-plant"}),
    "traits": frozenset({"classify-trait"}),
    "all": ALL_KINDS,
}
