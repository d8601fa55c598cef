"""One module per served model (and the admin and operations calls); each returns its FastAPI router."""
