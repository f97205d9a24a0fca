"""The relayer's web console: static files (``static/``) and their routes (:mod:`.serve`)."""
