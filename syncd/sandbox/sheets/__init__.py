"""The Google Sheets API v4 emulator with its OAuth2 token endpoint."""
