"""Benchmarks run by `make bench`: FastAGI load against floors, and real Asterisk calls."""
