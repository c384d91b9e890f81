"""Detection data: `records` (the labelled-image record and its torch dataset), `layouts` (readers for every
folder, manifest, Parquet and benchmark layout), `splits`, `guards` (pixel-hash duplicates, class bias report),
`build` (HF dataset builds with card and Parquet, streaming), `transforms` (training augmentation and evaluation
protocols) and `rescaling` (RescaleCL patch sampling).

Submodules are imported on demand so that `import aigi` does not pay for `datasets`.
"""
