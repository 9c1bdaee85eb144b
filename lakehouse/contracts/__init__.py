"""Data contracts: the model read from contracts/*.yaml, the shape a DataFrame is given, versions, personal data."""
