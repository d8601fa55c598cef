"""The machinery every model shares: the training loop and devices, the MLflow door and its gate, the nightly
stages, training-set and scoring helpers, the report renderer and the model registry. Never imports a model package."""
