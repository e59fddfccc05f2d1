"""Shared pytest set-up for the helper tests and the notebooks (run by nbval).

The test run keeps its lab files out of the learner's ``notebooks/lab-files``:
``MTLS_LAB_DIR`` points to a fresh temporary folder for the whole session
(or to ``$MTLS_TEST_LAB_DIR`` when set), and notebook kernels inherit it.
Notebooks therefore run in sequence against one folder, as a learner's
would, without touching the learner's own files.
"""

import atexit
import os
import shutil
import tempfile

if os.environ.get("MTLS_TEST_LAB_DIR"):
    os.environ["MTLS_LAB_DIR"] = os.environ["MTLS_TEST_LAB_DIR"]
else:
    _lab_dir = tempfile.mkdtemp(prefix="mtls-test-lab-")
    os.environ["MTLS_LAB_DIR"] = _lab_dir
    atexit.register(shutil.rmtree, _lab_dir, ignore_errors=True)
