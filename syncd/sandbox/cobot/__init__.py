"""The Cobot API simulator: a real loopback HTTP server for tests and the demo."""
