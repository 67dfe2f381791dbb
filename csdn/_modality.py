"""The two imaging modalities: their names, in the order of joint batches, and the one check of a modality argument.

A leaf module (imports nothing from csdn) that every layer uses; re-exported as :class:`csdn.data.Modality`
and :class:`csdn.Modality`. The names other datasets and tools use for a modality are accepted wherever a
modality is read (API arguments, CSV lists, ``--modality``) through the one table :data:`ALIASES`.
"""

from __future__ import annotations

from enum import Enum

__all__ = [
    "Modality",
    "MODALITIES",
    "VISIBLE",
    "INFRARED",
    "ALIASES",
    "check_modality",
    "modality_argument",
    "modality_choices",
]


class Modality(str, Enum):
    """Imaging modality of a sample. The value is the string used everywhere in the API."""

    VISIBLE = "visible"
    INFRARED = "infrared"

    @classmethod
    def parse(cls, value: str | Modality) -> Modality:
        """Return the modality named by ``value``: ``"visible"``, ``"infrared"`` or an alias of :data:`ALIASES`
        (``"rgb"``, ``"ir"``, ``"nir"``, ``"thermal"``), case-insensitive.

        Raises:
            ValueError: if ``value`` names no modality; the message lists the valid values and the aliases.
        """
        if isinstance(value, cls):
            return value
        text = str(value).strip().lower()
        text = ALIASES.get(text, text)
        for member in cls:
            if member.value == text:
                return member
        raise ValueError(f"Unknown modality {value!r}. Valid values are {modality_choices()}.")

    def __str__(self) -> str:
        return self.value


#: The modality names, in the order used for joint batches (visible rows first).
VISIBLE, INFRARED = Modality.VISIBLE.value, Modality.INFRARED.value
MODALITIES: tuple[str, str] = (VISIBLE, INFRARED)
#: Other names of the modalities (lower case) -> the name csdn uses: the one table every reader of a modality uses.
ALIASES: dict[str, str] = {"rgb": VISIBLE, "ir": INFRARED, "nir": INFRARED, "thermal": INFRARED}


def modality_choices() -> str:
    """The accepted spellings, for messages: ``'visible', 'infrared' (or 'rgb' for 'visible', ...)``."""
    aliases = ", ".join(f"{alias!r} for {name!r}" for alias, name in ALIASES.items())
    return f"{', '.join(map(repr, MODALITIES))} (or {aliases})"


def check_modality(modality: str | Modality) -> str:
    """Return ``modality`` as its plain name (``"visible"``/``"infrared"``, case-insensitive, enums allowed).

    Raises:
        ValueError: naming the value and the valid ones.
    """
    return Modality.parse(modality).value


def modality_argument(value: str) -> str:
    """:func:`check_modality` as an ``argparse`` type (``--modality``): a bad value is argparse's one-line error."""
    import argparse

    try:
        return check_modality(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
