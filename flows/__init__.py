"""Prefect flows: thin orchestration over the VideoBoost core (each task calls one core function)."""
