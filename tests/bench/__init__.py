"""Smoke tests of the benchmarks in `bench/` (tiny numbers, real servers)."""
