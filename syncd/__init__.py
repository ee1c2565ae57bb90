"""cobot-syncd: keeps Google Sheets in step with Cobot through webhooks."""

__version__ = "0.1.0"
