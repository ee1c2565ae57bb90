"""How a cell the daemon writes reads to a person.

The daemon writes dates as Sheets serial numbers (see ``syncd.mapping``) and gives their
columns a date format; ``syncd preview`` and the demo's sheet view show them the way that
format does in Google Sheets, so what a person checks is what they will see there.
"""

from __future__ import annotations

from datetime import timedelta

from syncd.mapping.cells import SHEETS_EPOCH, CellValue

_SERIAL_FORMATS = {"date": "%Y-%m-%d", "datetime": "%Y-%m-%d %H:%M:%S"}


def serial_to_text(serial: float, column_type: str) -> str:
    """A date serial as ``2025-06-01`` (date) or ``2025-06-01 09:30:00`` (datetime)."""
    moment = SHEETS_EPOCH + timedelta(seconds=round(serial * 86400))
    return moment.strftime(_SERIAL_FORMATS[column_type])


def display_cell(value: CellValue | None, column_type: str = "text") -> str:
    """One cell as a date-formatted Google Sheets column shows it; text stays literal."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        if column_type in _SERIAL_FORMATS:
            try:
                return serial_to_text(value, column_type)
            except OverflowError:
                pass
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    return str(value)
