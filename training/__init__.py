"""Training: one module per model (PyTorch), the shared training loop and device handling, metrics, the MLflow gate.

Nothing heavy is imported here: ``import training`` must stay cheap so that DAG files can name its functions
without pulling torch or MLflow in at parse time. Import the submodules inside tasks.
"""
