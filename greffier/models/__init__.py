"""Model assets and device choice: where weights come from, never how they run."""
