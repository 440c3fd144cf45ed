"""Browser tests of each role's day."""
