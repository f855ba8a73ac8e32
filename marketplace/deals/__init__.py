"""Deals: the economics tools applied to rounds and groups (pay-for-performance contracts, revenue shares, launch pricing).

A domain package at the billing/training layer with its own Django app (label ``deals``) and migrations. It calls the
pure ``economics`` package and stores what people agreed; billing reads a published contract from here.
"""
