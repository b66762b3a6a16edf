"""Counts in the lines users read: "1 sentence", "2 sentences"."""

from __future__ import annotations


def count(number: int, noun: str, plural: str = "") -> str:
    """`number` and `noun`, the noun in the plural (`plural`, else `noun` + "s") unless the number is 1."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
