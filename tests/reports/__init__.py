"""Tests of the reports: numbers against a small data set computed by hand (see conftest.py)."""
