"""Data sources for the platform's defaults and tests: Dominick's orange juice and a synthetic generator."""
