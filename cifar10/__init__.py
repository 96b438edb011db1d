"""The library the pipeline's stages call: data, augmentation, models, training, reporting, tracking, schema.

Nothing here runs a stage or reads params.yaml on import; `stages/` holds the entry points.
"""
