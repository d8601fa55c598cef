"""The simulated storefront: the embedded default data source and the test oracle (planted truth)."""
