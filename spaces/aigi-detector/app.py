"""Hugging Face Space entry of the aigi detector demo; the app itself is `aigi.demo` (installed by requirements.txt).

Detectors: the checkpoints bundled with aigi, plus the names or folders listed in the AIGI_DEMO_MODELS variable.
"""

from aigi.demo import LAUNCH_OPTIONS, build_demo, detector_choices

demo = build_demo(detector_choices())

if __name__ == "__main__":
    demo.launch(**LAUNCH_OPTIONS)
