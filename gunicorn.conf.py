"""gunicorn settings for Verifier: `gunicorn --config gunicorn.conf.py wsgi:app`.

The app adds a filter to gunicorn's access logger so upload-link tokens are logged as
/u/[redacted] (verifier.web.http.RedactLinkTokens).
"""

from verifier.portal import documents

accesslog = "-"
# Uploads are parsed in memory and decoded in a process pool; a slow decode is cut off there.
timeout = 60


def worker_exit(server, worker):
    """Stop this worker's decoder processes with it."""
    documents.shutdown(wait=False)
