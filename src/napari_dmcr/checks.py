"""Checks of single settings shared by every method: a number in a range, a whole number, a positive one.

Each raises :class:`~napari_dmcr.errors.InputError` with the setting's name and the range, so a
front end can show the message as it is.
"""

from __future__ import annotations

import math

import numpy as np

from napari_dmcr.errors import InputError


def finite_number(name, value, low, high=math.inf, *, exclusive=False):
    """A finite float in [low, high] ((low, high] with ``exclusive``); NaN and infinities fail."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not (low < number if exclusive else low <= number) or not number <= high or not math.isfinite(number):
        span = f"> {low:g}" if exclusive else f">= {low:g}"
        span += f" and <= {high:g}" if high < math.inf else ""
        raise InputError(f"{name} must be a finite number {span}, got {value}")
    return number


def whole_number(name, value, low, high=None):
    """An int (not a bool, not a float) in [low, high]."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < low
        or (high is not None and value > high)
    ):
        span = f"from {low} to {high}" if high is not None else f">= {low}"
        raise InputError(f"{name} must be a whole number {span}, got {value}")
    return int(value)


def positive_number(name, value):
    """A finite float > 0 (a size, a velocity, a strain): :func:`finite_number` worded "positive"."""
    try:
        return finite_number(name, value, 0.0, exclusive=True)
    except InputError:
        raise InputError(f"{name} must be a positive number, got {value}") from None


def positive_integer(name, value):
    """An int >= 1 (a count, a factor): :func:`whole_number` worded "positive integer"."""
    try:
        return whole_number(name, value, 1)
    except InputError:
        raise InputError(f"{name} must be a positive integer, got {value!r}") from None
