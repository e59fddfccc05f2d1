"""Shared pytest set-up for the helper tests and the notebooks (run by nbval).

The test run keeps its lab files out of the learner's ``notebooks/lab-files``:
``MTLS_LAB_DIR`` points to a fresh temporary folder for the whole session, and
notebook kernels inherit it. Notebooks therefore run in sequence against one
folder, as a learner's would, without touching the learner's own files.
"""

import os
import tempfile

if "MTLS_LAB_DIR" not in os.environ or os.environ.get("MTLS_TEST_KEEP_LAB_DIR") != "1":
    os.environ["MTLS_LAB_DIR"] = tempfile.mkdtemp(prefix="mtls-test-lab-")
