"""Simulated data with a known truth: cfDNA reads (`cfdna`, for tests, benchmarks and test_data) and the
trial-sized demo cohort (`demo`, `mrdtrack demo DIR`)."""
