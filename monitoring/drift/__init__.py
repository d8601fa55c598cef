"""The drift monitor: Evidently reports of a date's features against the champion's reference, and on-call alerts."""
