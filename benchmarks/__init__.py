"""Benchmarks for flask-routetimer (not shipped in the distribution)."""
