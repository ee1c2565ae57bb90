"""Durable state under ``state_dir``: the inbox, per-row states, typed meta and the file lock."""
