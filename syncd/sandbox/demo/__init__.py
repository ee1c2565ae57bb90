"""``syncd demo``: a simulated coworking day synced into an emulated spreadsheet."""
