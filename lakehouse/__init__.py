"""Lakehouse ML platform: POS deliveries to Delta bronze/silver/gold tables and the models built on them."""

__version__ = "0.1.0"
