"""Argument checks shared by every part of the Python package."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """``value`` as an int when it is an integer (not a bool) >= ``minimum``; TypeError for any
    other type, ValueError below the minimum, each naming the argument."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)
