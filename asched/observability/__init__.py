"""Metrics and forecasts built from the scheduler's state and events."""
