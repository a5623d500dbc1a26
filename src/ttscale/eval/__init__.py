"""Metrics, difficulty bins, compute-optimal selection, plots and reports over run directories."""
