"""Code the tests and the benchmarks share and the product never runs: the synthetic news
generator, the gold-set scorer and process measurements. `bench/` reaches it by putting
`tests/` on `sys.path`, as pytest does for the tests."""
