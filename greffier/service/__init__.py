"""greffier.service."""
