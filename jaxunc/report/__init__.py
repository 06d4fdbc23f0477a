"""Figures and the markdown report of an analysis."""
