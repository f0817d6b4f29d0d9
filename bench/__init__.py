"""Benchmarks: run with `make bench` or `python bench/permission_loop.py`."""
