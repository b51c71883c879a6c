"""The command line: a folder of scans to a cross-validated result and a report.

    dinoatten embed DATA --cache-dir DIR      embed and cache every scan (resumable)
    dinoatten cv DATA --method all --out DIR  grouped stratified CV, metrics, predictions
    dinoatten report DIR                      an HTML report of a cv run
    dinoatten fit DATA --out model.safetensors    train one method on every scan
    dinoatten predict model.safetensors SCANS...  probabilities, labels, top slices;
                                              with labels, an evaluation run
    dinoatten explain model.safetensors SCANS... --out DIR   attention maps to open
                                              over each scan in a viewer (NIfTI)
    dinoatten demo                            the whole loop on a small offline data set

``DATA`` is a folder holding the scans and ``labels.csv`` (columns ``path``, relative
to the folder, ``label`` and, optionally, ``subject``). Errors in the input end with
one line on stderr and exit status 1.
"""

from ._main import main

__all__ = ["main"]
