"""The body every dock widget of the plugin shares: its parts in a scroll area.

The docked widgets stack in one column of the window; with their full heights that column was
over 2000 px. In a scroll area each dock can be as short as the window leaves it, and its parts
keep their own sizes (plots stay readable: scroll rather than squeeze).
"""

from __future__ import annotations

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QFrame, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

MIN_BODY_HEIGHT = 90  # the least a dock asks of the window's height: five docks fit 768 px


def scrolling_body(owner: QWidget, *parts: QWidget, stretch: bool = False) -> QScrollArea:
    """Lay ``parts`` out top to bottom in a scroll area that fills ``owner``."""
    inner = QWidget()
    # As wide as the dock, whatever the parts would like: scroll up and down, never sideways.
    inner.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    layout = QVBoxLayout(inner)
    layout.setContentsMargins(0, 0, 0, 0)
    for part in parts:
        layout.addWidget(part)
    if stretch:
        layout.addStretch()
    scroll = QScrollArea()
    scroll.setWidget(inner)
    scroll.setWidgetResizable(True)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setFrameShape(QFrame.Shape.NoFrame)
    scroll.setMinimumHeight(MIN_BODY_HEIGHT)
    outer = QVBoxLayout(owner)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(scroll)
    return scroll
