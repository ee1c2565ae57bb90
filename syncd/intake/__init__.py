"""First stage: the webhook receiver and the strict parsing of the URL a webhook names."""
