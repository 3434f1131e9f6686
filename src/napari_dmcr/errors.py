"""Errors that are the user's to fix (bad input, impossible settings).

Every message says what is wrong and what to do. The command line prints them without a
traceback; the napari widgets show them as notifications.
"""


class InputError(ValueError):
    """Bad input or settings; the message tells the user what to change.

    An error that a front end can fix with an option of its own names the kind of fix in
    ``remedy`` (``"without_gram"``: descriptors without Gram matrices; ``"threshold"``: segment a
    grey image), and ``message`` is the text without the library's wording of it
    (``library_hint``, which ``str(error)`` adds), so that the front end words it its own way.
    """

    def __init__(self, message, *, remedy=None, library_hint=None):
        super().__init__(message if library_hint is None else f"{message}; {library_hint}")
        self.message, self.remedy = message, remedy


class DeviceMemoryError(InputError):
    """The device ran out of memory; the message names a chunk size that fits, or the CPU."""
