"""The data side of Storefront ML: the raw data contract, Spark feature builds, expectation suites, Feast."""
