"""Cells for CSV files people open in a spreadsheet: text that a spreadsheet would run as a formula is defused.

A cell starting with = + - @ (or a tab or carriage return, which some spreadsheets skip before reading one of those)
is a formula to Excel, LibreOffice and Google Sheets: ``=HYPERLINK(...)`` in model output would become a live link.
OWASP's advice: prefix such a cell with a single quote, which the spreadsheet shows as text. Numbers pass unchanged.
"""

from __future__ import annotations

from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def spreadsheet_row(values: list[Any]) -> list[Any]:
    return [spreadsheet_cell(v) for v in values]
