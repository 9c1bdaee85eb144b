"""Scoring: the rows of a target week (`rows`), promotion prices from the history (`prices`), lifts from
the estimated effects (`lifts`) and the recommendation per outlet x product (`recommend`)."""
