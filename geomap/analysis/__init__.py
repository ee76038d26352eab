"""Analysis functions: ``(session, **parameters) -> plain data``; no Flask below here."""
