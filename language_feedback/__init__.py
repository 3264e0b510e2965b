"""language_feedback package."""
