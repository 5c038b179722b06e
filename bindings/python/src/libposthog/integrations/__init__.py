"""Framework integrations with posthog-python's import paths
(``posthog.integrations.django`` -> ``libposthog.integrations.django``, ...):
request contexts for Django and Flask, task contexts and lifecycle events for
Celery. Each module imports its framework only when used."""
