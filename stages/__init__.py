"""The pipeline's stages, one module per DVC stage (`python -m stages.<name>`), nothing else.

Each reads top to bottom: params -> load inputs -> one core call into `cifar10` -> write outputs ->
log to MLflow. No stage imports another.
"""
