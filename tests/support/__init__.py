"""Helpers shared by the test suites: crash injection, lock observation, worker environments, waiting."""
