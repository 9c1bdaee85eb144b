"""Monitoring a week: profiles, data health, drift (Evidently) and the retraining decision."""
