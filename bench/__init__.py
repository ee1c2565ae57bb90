"""Benchmarks of cobot-syncd against the loopback emulators: run ``python bench/run.py``.

They print figures; they assert nothing about speed (shared machines are noisy, so every
comparison is a ratio measured within one run).
"""
