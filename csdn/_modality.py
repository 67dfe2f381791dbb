"""The two imaging modalities: their names, in the order of joint batches, and the one check of a modality argument.

A leaf module (imports nothing from csdn) that every layer uses; re-exported as :class:`csdn.data.Modality`
and :class:`csdn.Modality`.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["Modality", "MODALITIES", "VISIBLE", "INFRARED", "check_modality"]


class Modality(str, Enum):
    """Imaging modality of a sample. The value is the string used everywhere in the API."""

    VISIBLE = "visible"
    INFRARED = "infrared"

    @classmethod
    def parse(cls, value: str | Modality) -> Modality:
        """Return the modality named by ``value`` (``"visible"`` or ``"infrared"``, case-insensitive).

        Raises:
            ValueError: if ``value`` names no modality; the message lists the valid values.
        """
        if isinstance(value, cls):
            return value
        text = str(value).strip().lower()
        for member in cls:
            if member.value == text:
                return member
        valid = ", ".join(repr(m.value) for m in cls)
        raise ValueError(f"Unknown modality {value!r}. Valid values are {valid}.")

    def __str__(self) -> str:
        return self.value


#: The modality names, in the order used for joint batches (visible rows first).
VISIBLE, INFRARED = Modality.VISIBLE.value, Modality.INFRARED.value
MODALITIES: tuple[str, str] = (VISIBLE, INFRARED)


def check_modality(modality: str | Modality) -> str:
    """Return ``modality`` as its plain name (``"visible"``/``"infrared"``, case-insensitive, enums allowed).

    Raises:
        ValueError: naming the value and the valid ones.
    """
    return Modality.parse(modality).value
