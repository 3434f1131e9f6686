"""How the widgets tell the user what happened: a line in the widget and a napari notification."""

from __future__ import annotations

from magicgui.widgets import Label
from napari.utils.notifications import notification_manager, show_error, show_info

from napari_dmcr.errors import InputError


class StatusLine(Label):
    """A wrapped line of text at the bottom of a widget for the latest message."""

    def __init__(self):
        super().__init__(value="")
        self.native.setWordWrap(True)
        self._notified = set()

    def dismiss(self) -> None:
        """Close the notifications this line sent that are still shown: napari keeps a toast
        until its window is active again, so a finished run's "done" stayed over the next run."""
        try:
            from napari._qt.dialogs.qt_notification import NapariQtNotification
        except ImportError:  # napari moved its private module: the toasts stay, nothing else changes
            return
        window = self.native.window()
        for toast in list(NapariQtNotification._instances):
            try:
                ours = toast.parent() is not None and toast.parent().window() is window
                if ours and toast.message.text() in self._notified:
                    toast.close()
            except RuntimeError:  # its viewer was closed with the toast up: napari keeps a dead entry
                NapariQtNotification._instances.remove(toast)
        self._notified.clear()

    def info(self, message: str, notify: bool = False) -> None:
        """Show ``message``; also as a napari notification when ``notify``."""
        self.native.setStyleSheet("")
        self.value = message
        if notify:
            self._notified.add(message)
            show_info(message)

    def error(self, error: BaseException) -> None:
        """Show an error: its message if the user can fix it, else napari's error report."""
        self.native.setStyleSheet("color: #e05d5d;")
        if isinstance(error, InputError):
            self.value = str(error)
            show_error(str(error))
        else:
            self.value = f"unexpected error ({type(error).__name__}): {error}"
            notification_manager.receive_error(type(error), error, error.__traceback__)
