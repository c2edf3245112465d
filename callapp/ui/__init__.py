"""The PySide6 desktop UI: one view-model and widgets that only render."""
