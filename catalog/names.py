"""What the catalog accepts as a model name (a path segment, a URL part and a CLI argument alike)."""

from __future__ import annotations

import re

from catalog.errors import InvalidNameError

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def validate_model_name(name: str) -> str:
    if not MODEL_NAME.match(name):
        raise InvalidNameError(
            f"model name {name!r} must start with a letter or digit and use only letters, digits, '.', '_' or '-'"
        )
    return name
