"""Private helpers shared by the subpackages: parameter validation and the fit contract,
option values, devices, files, optional imports, docstrings and tags. Nothing here is
public API."""
