"""Session backends; each module registers itself in ``runtime.session.BACKENDS`` on import."""
