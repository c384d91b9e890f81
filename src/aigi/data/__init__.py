"""Detection data: `sources` (records from folders, manifests and saved HF datasets; splits; torch datasets),
`transforms` (training augmentation and evaluation protocols) and `rescaling` (RescaleCL patch sampling).

Submodules are imported on demand so that `import aigi` does not pay for `datasets`.
"""
