"""Test-only helpers importable by subprocesses (tests/ is put on PYTHONPATH)."""
