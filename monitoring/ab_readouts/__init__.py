"""A/B readouts: the experiment registry reconciled, exposures joined to outcomes, statistics, readouts, pages."""
