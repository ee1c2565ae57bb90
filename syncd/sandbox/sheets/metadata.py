"""spreadsheets.get: the spreadsheet's metadata, the grid data of ranges, and ``fields``.

As Google does, the ``fields`` mask cuts the answer down to the fields it names, so a client
that forgets to ask for a field does not see it here either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from syncd.sandbox.sheets.model import Spreadsheet
from syncd.sandbox.sheets.request import Call, mask_paths, select_fields


def spreadsheets_get(ss: Spreadsheet, call: Call, params: Mapping[str, str]) -> dict[str, Any]:
    """The metadata and, for ``ranges`` with ``includeGridData=true`` or a ``fields`` mask
    naming ``data``, each range's GridData (values, formatted values, formats). As Google
    does, only the worksheets the ranges name are listed then, and zero
    ``startRow``/``startColumn`` are left out."""
    metadata = ss.metadata()
    ranges = call.query.getall("ranges", [])
    fields = call.query.get("fields", "")
    if ranges and (call.flag("includeGridData") or "data" in fields):
        data: dict[str, list[dict[str, Any]]] = {}
        for text in ranges:
            ws, rng = ss.resolve(text)
            data.setdefault(ws.title, []).append(ws.grid_data(ws.bounds(rng)))
        metadata["sheets"] = [
            {**entry, "data": data[entry["properties"]["title"]]}
            for entry in metadata["sheets"]
            if entry["properties"]["title"] in data
        ]
    return select_fields(metadata, mask_paths(fields)) if fields else metadata
