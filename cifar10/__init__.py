"""The library the pipeline's stages call, in layers, lowest first: a module imports from its own
layer and the layers below it, never from one above (tests/test_layout.py checks it).

  (modules)      errors, classes, checksums, paths, outputs, console, runtime: what every layer
                 shares (the one error type, class names, the producer map, seeds and precision)
  schema/        the typed params of params.yaml and their loader
  data/          the .npz contract, its sources, subsets and the one splitter
  augmentation/  seeded keras-cv layers and the rebalancing of a set
  models/        side-effect-free builders of functional Keras models, saved-model loading
  weights/       pretrained backbone weights: fetching, checksums, the manifest, the .pth reader
  training/      the fit loops, the optimizer, the imbalance remedies, input streams, prediction
  reporting/     the one test-set scorer, the comparison with the study's figures, figures
  tracking/      MLflow: the store, stage runs, provenance; stages hand it to the cores

Nothing here runs a stage or reads params.yaml on import: `stages/` holds the entry points, and the
code that writes the study's pages or runs its experiments is `writeup/`, which no stage imports.
"""
