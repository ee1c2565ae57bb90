"""Local stand-ins for Cobot and the Google Sheets API.

They are real HTTP servers on loopback, so the daemon's real clients (aiohttp, gspread,
google-auth) talk to them unchanged. Tests, the demo and the benchmarks all use them.
"""
