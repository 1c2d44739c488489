"""A small synthetic instrument and pipeline for the quickstart, the tests and the benchmarks."""
