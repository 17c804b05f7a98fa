"""Benchmarks for asched; see benchmarks/README.md."""
