"""Example applications for ``asched run``."""
