"""greffier.store: the transcript store (SQLAlchemy)."""
