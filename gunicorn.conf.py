"""gunicorn settings for Verifier: `gunicorn --config gunicorn.conf.py wsgi:app`.

The app adds a filter to gunicorn's access logger so upload-link tokens are logged as
/u/[redacted] (verifier.web.http.RedactLinkTokens).
"""

import threading

from verifier.portal import documents

accesslog = "-"
# Uploads are parsed in memory and decoded in a process pool; a slow decode is cut off there.
timeout = 60


def post_worker_init(worker):
    """Start this worker's decoder processes in the background: the first upload finds them
    running instead of waiting seconds for them."""
    threading.Thread(target=documents.get_default_pool().warm, daemon=True).start()


def worker_exit(server, worker):
    """Stop this worker's decoder processes with it."""
    documents.shutdown(wait=False)
