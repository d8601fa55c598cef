"""Data quality gates: Great Expectations suites generated from the contract and the feature definitions.

``suites`` builds the suites (structural checks from ``feature_repo.contract.schema`` and
``feature_repo.features.tables``, statistical bounds from ``config/validation.yaml``), ``validate`` runs them on
one date's partitions, quarantines what fails and renders data docs. Great Expectations is imported lazily and
only by these two modules, so an upgrade touches them alone.
"""
