"""Tools for running the whole system on one machine: the demo's script and seed data, and the Celery worker
launcher the demo and the end-to-end tests share. Nothing here is imported by the site itself."""
