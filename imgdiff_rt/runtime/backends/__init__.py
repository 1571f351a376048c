"""Session backends; each module registers itself in ``runtime.session_base.BACKENDS`` on import."""
