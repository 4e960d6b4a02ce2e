"""Analyses of trained models (results written as records)."""
