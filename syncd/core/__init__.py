"""The vocabulary every stage shares: errors that say what to do, the Cobot event catalogue,
request budgets, retry timing and metrics. Nothing here imports another stage."""
