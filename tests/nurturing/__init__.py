"""Tests of nurturing: templates, sequences, sending and tracking."""
