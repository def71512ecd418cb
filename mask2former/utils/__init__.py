"""Utilities: crash-safe file writes, safe weight loading, robust sample loading."""
