"""Everything that talks to Cobot: the API client, fetch planning and webhook subscriptions."""
