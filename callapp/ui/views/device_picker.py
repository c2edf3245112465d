"""A device picker: labelled choices, each standing for a spec (the lobby's and Preferences')."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox

from callapp.ui.devices import Choice, spec_for


class DevicePicker(QComboBox):
    """Labelled choices, each standing for a spec.

    An editable picker also takes a typed spec (a file's path, ``camera:2``,
    ``tone:880``); a saved spec the system no longer lists is kept and shown.
    ``label`` and ``tip`` become the accessible name and description (a view
    that describes its controls itself may leave them empty).
    """

    def __init__(
        self,
        name: str,
        label: str = "",
        *,
        editable: bool,
        tip: str = "",
        width_in_chars: int = 16,
    ) -> None:
        super().__init__()
        self.setObjectName(name)
        self.setEditable(editable)
        if tip:
            self.setToolTip(tip)
            self.setAccessibleDescription(tip)
        if label:
            self.setAccessibleName(label)
            line = self.lineEdit() if editable else None
            if line is not None:
                line.setAccessibleName(label)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(width_in_chars)
        self.choices: tuple[Choice, ...] = ()

    def set_choices(self, choices: tuple[Choice, ...], spec: str | None = None) -> None:
        """Offer ``choices`` and show ``spec`` (``None``: keep what is picked now)."""
        if spec is None and (self.count() or self.isEditable()):
            spec = self.spec()
        self.choices = choices
        self.blockSignals(True)
        try:
            self.clear()
            for choice in choices:
                self.addItem(choice.label, choice.spec)
        finally:
            self.blockSignals(False)
        if spec is not None:
            self.set_spec(spec)

    def spec(self) -> str:
        if self.isEditable():
            return spec_for(self.currentText(), self.choices)
        data = self.currentData()
        return str(data) if data is not None else ""

    def set_spec(self, spec: str) -> None:
        index = self.findData(spec)
        if index < 0 and not self.isEditable():
            self.addItem(f"{spec} (not found)", spec)
            index = self.count() - 1
        if index >= 0:
            self.setCurrentIndex(index)
        else:
            self.setEditText(spec)


__all__ = ["DevicePicker"]
