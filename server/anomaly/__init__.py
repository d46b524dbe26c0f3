"""Anomaly detection: data validation, training, MLflow registry and the servable scorer."""
