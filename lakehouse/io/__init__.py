"""Storage and services behind small helpers: Spark sessions and jobs, Delta tables without Spark."""
