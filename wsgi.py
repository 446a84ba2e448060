"""Entry point for `flask --app wsgi …` and for gunicorn (`gunicorn wsgi:app`)."""

import gc

from magazine import create_app

app = create_app()
# What the app is made of (modules, mappers, compiled templates) lives as long as the worker:
# left out of the cyclic garbage collector's passes, a full collection no longer walks it
# (~0.05 ms a request on the webhook benchmark). `gunicorn wsgi:app` imports this module in
# each worker.
gc.freeze()
