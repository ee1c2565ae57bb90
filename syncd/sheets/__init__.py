"""Everything that talks to Google Sheets: transport, A1 notation, row planning and the writer."""
