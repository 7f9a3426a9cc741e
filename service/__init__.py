"""The BentoML service (see service/service.py and bentofile.yaml)."""
