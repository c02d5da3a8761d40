"""The interaction API: validates favourites, publishes them to Kafka, serves reads.

``create_app`` in :mod:`backend.app` builds the FastAPI app; ``recipe-pipeline
backend`` (:mod:`backend.command`) serves it with uvicorn. Nothing here connects to
Kafka or the database at import time: the app's lifespan owns both.
"""
