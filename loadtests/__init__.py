"""Load tests and benchmarks: they print numbers and write JSON; they are not tests."""
