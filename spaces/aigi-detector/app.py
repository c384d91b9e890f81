"""Hugging Face Space of the aigi detector demo, written by `aigi export-space`; the app itself is `aigi.demo`.
`import aigi` finds aigi's code in aigi/ beside this file (`python app.py` puts this folder first on sys.path) or, for
the aigi repository's copy of this file, which lacks aigi/ and detectors/, the installed aigi; requirements.txt
installs the packages that aigi needs.

Detectors: the model folders in detectors/ (the default one pre-selected), or, where that folder is missing, the
checkpoints bundled with aigi; plus the bundled names or folders listed in the AIGI_DEMO_MODELS variable.
"""

from pathlib import Path

from aigi.demo import LAUNCH_OPTIONS, build_demo, detector_choices

detectors = Path(__file__).parent / "detectors"
demo = build_demo(detector_choices(detectors_dir=detectors if detectors.is_dir() else None))

if __name__ == "__main__":
    demo.launch(**LAUNCH_OPTIONS)
