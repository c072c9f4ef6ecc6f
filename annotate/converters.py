"""URL converters: a row id in a path is bounded, so a number too large for the database is a 404.

Django's `int` converter takes any number of digits, and a lookup with a value past 2**63 - 1
makes SQLite's driver raise OverflowError: a 500 instead of "not found". 18 digits always fit
a BigAutoField, so `<id:...>` paths can only ever ask the database for a value it can hold.
"""

from __future__ import annotations

from django.urls import register_converter

MAX_ID = 10**18 - 1  # the largest value `IdConverter` matches; also the bound of id filters


class IdConverter:
    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


# The OpenAPI schema describes it as a bounded integer (SPECTACULAR_SETTINGS in settings).
ID_SCHEMA = {"type": "integer", "minimum": 0, "maximum": MAX_ID}

register_converter(IdConverter, "id")
