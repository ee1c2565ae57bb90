"""Drives the stages: the worker that drains the inbox, the re-sync and the backfill."""
