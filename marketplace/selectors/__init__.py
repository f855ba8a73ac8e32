"""Selectors read: query helpers that apply who-may-see-what, so views never filter by hand."""
