"""One blueprint per screen (flaskr-style)."""
