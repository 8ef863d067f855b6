"""Schema revisions, oldest first: ``0001_baseline`` (greffier 0.1, unversioned), then each
change."""
