"""Errors that are the user's to fix (bad input, impossible settings).

Every message says what is wrong and what to do. The command line prints them without a
traceback; the napari widgets show them as notifications.
"""


class InputError(ValueError):
    """Bad input or settings; the message tells the user what to change."""


class DeviceMemoryError(InputError):
    """The device ran out of memory; the message names a chunk size that fits, or the CPU."""
