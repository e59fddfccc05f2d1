"""Shared pytest set-up for the helper tests and the notebooks (run by nbval).

Lab files. The test run keeps its lab files out of the learner's
``notebooks/lab-files``: ``MTLS_LAB_DIR`` points to a fresh temporary folder
for each test process (or to a sub-folder of ``$MTLS_TEST_LAB_DIR`` when set),
and notebook kernels inherit it. Each pytest-xdist worker is its own process,
so notebooks that run at the same time never share lab files; the notebooks
one worker runs share its folder, as a learner's notebooks share theirs.

Measuring times. Notebook 12 measures each action for a fixed time; the
tests run it four times and never read a figure, so ``MTLS_MEASURE_TIME_SCALE``
is 0.2 here (``lab_helpers/measuring.py``), unless it is already set, and
kernels inherit it. The website's build leaves it unset: readers see
full-length measurements.

Parallel runs. ``python -m pytest`` runs on pytest-xdist workers
(``pyproject.toml``). The cells of one notebook are nbval items that share a
kernel and must run in order on one worker: each notebook is an
``xdist_group`` of its own, and ``--dist loadgroup`` keeps a group together.

Kernels. jupyter_client gives a kernel five free TCP ports by binding port 0,
reading the numbers and closing the sockets; the kernel binds them a moment
later. Anything else on the machine that binds port 0 in between (another
kernel, a lab server) can take one, and the kernel dies before it starts
("Kernel died before replying to kernel_info"). The notebook tests therefore
start kernels over ZeroMQ's IPC transport (Unix sockets in a private folder:
no ports at all) wherever ZeroMQ has it, and elsewhere (Windows) start a
kernel again when it dies that way.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent

#: What jupyter_client raises when the kernel process exits before it answers
#: (jupyter_client/client.py, ``wait_for_ready``).
KERNEL_DIED = "Kernel died before replying to kernel_info"
KERNEL_START_ATTEMPTS = 3


def _private_folder(prefix: str) -> str:
    folder = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


def _set_lab_dir() -> None:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # "gw0", "gw1", ... in a worker, unset otherwise
    if os.environ.get("MTLS_TEST_LAB_DIR"):
        os.environ["MTLS_LAB_DIR"] = os.path.join(os.environ["MTLS_TEST_LAB_DIR"], worker or "main")
    else:
        os.environ["MTLS_LAB_DIR"] = _private_folder(f"mtls-test-lab-{worker}-")


_set_lab_dir()
MEASURE_TIME_SCALE_FOR_TESTS = "0.2"
os.environ.setdefault("MTLS_MEASURE_TIME_SCALE", MEASURE_TIME_SCALE_FOR_TESTS)  # see "Measuring times" above


# -- kernels ------------------------------------------------------------------


def ipc_available() -> bool:
    """Whether kernels can use ZeroMQ's IPC transport here: on Linux and macOS, where ZeroMQ has it.

    On Windows, pyzmq's wheels have had IPC (over AF_UNIX) only in some
    releases (https://github.com/zeromq/pyzmq/pull/1758), and Jupyter's
    kernels are run and tested over TCP there: TCP, with a retry, it is.
    """
    import zmq

    return os.name == "posix" and bool(zmq.has("ipc"))


_ipc_folder: str | None = None


def kernel_connection_options() -> dict[str, str]:
    """Keyword arguments for a ``KernelManager`` that needs no TCP port: IPC in a private folder.

    ``ip`` must be set: left to jupyter_client, an IPC kernel's sockets are
    named ``kernel-ipc-N`` relative to the current folder (checked with
    jupyter_client 8.10), which is not the kernel's own working folder
    and is shared by every kernel started from it. A short absolute path
    also keeps under the 104-byte limit of a Unix socket path on macOS.
    """
    global _ipc_folder
    if not ipc_available():
        return {}
    if _ipc_folder is None:
        _ipc_folder = _private_folder("mtls-kernels-")
    return {"transport": "ipc", "ip": os.path.join(_ipc_folder, uuid.uuid4().hex[:12])}


def lab_kernel_manager(**options: Any) -> Any:
    """A ``jupyter_client.KernelManager`` for the notebook tests (IPC where available)."""
    from jupyter_client.manager import KernelManager

    return KernelManager(**kernel_connection_options(), **options)


def start_with_retry(start: Callable[[], Any], attempts: int = KERNEL_START_ATTEMPTS) -> Any:
    """Call ``start()``; when a kernel dies before it starts, try again (at most ``attempts`` times).

    Only that one failure is retried: any other error is a real one. Over
    IPC it should never happen; over TCP (Windows) it is the port race.
    """
    for attempt in range(1, attempts + 1):
        try:
            return start()
        except RuntimeError as error:
            if KERNEL_DIED not in str(error) or attempt == attempts:
                raise


def _nbval_kernels_use_ipc_and_retry() -> None:
    """Make nbval start its kernels with :func:`lab_kernel_manager`, retrying a kernel that dies at start.

    nbval 0.11 builds ``KernelManager(kernel_name=..., kernel_spec_manager=...)``
    itself (``nbval/kernel.py``, ``start_new_kernel``) and offers no option
    for the transport, so its module's two names are replaced here. A test
    (``tests/test_notebook_kernels.py``) checks that nbval's kernels do use
    IPC, so an nbval upgrade that bypasses this is noticed.
    """
    try:
        import nbval.kernel
    except ImportError:  # nbval absent: no notebook is collected
        return
    if getattr(nbval.kernel.start_new_kernel, "lab_patched", False):
        return
    original_start = nbval.kernel.start_new_kernel

    def start_new_kernel(*args: Any, **kwargs: Any) -> Any:
        return start_with_retry(lambda: original_start(*args, **kwargs))

    start_new_kernel.lab_patched = True  # type: ignore[attr-defined]
    nbval.kernel.start_new_kernel = start_new_kernel
    nbval.kernel.KernelManager = lambda **options: lab_kernel_manager(**options)


_nbval_kernels_use_ipc_and_retry()


@pytest.fixture
def measure_scale_set_by_the_tests() -> bool:
    """Whether MTLS_MEASURE_TIME_SCALE has the tests' value (else it was set to another before they started)."""
    return os.environ.get("MTLS_MEASURE_TIME_SCALE") == MEASURE_TIME_SCALE_FOR_TESTS


@pytest.fixture
def kernel_options() -> Callable[[], dict[str, str]]:
    """Makes the ``KernelManager`` options of one notebook kernel (IPC where available): see
    :func:`kernel_connection_options`. A factory: every kernel needs its own."""
    return kernel_connection_options


@pytest.fixture
def kernel_start_with_retry() -> Callable[..., Any]:
    """:func:`start_with_retry`, for tests that start kernels themselves."""
    return start_with_retry


# -- scheduling on pytest-xdist workers ---------------------------------------


def _scope(nodeid: str) -> str:
    """The unit a worker runs whole: a notebook (all its cells, in order), or else one test."""
    path = nodeid.split("::", 1)[0]
    return path if path.endswith(".ipynb") else nodeid


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, which may be absent
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist load`` (what ``-n`` implies), except that a notebook's cells stay together, in order.

    nbval's items of one notebook share one kernel, so they must run on one
    worker in order. xdist's ``loadgroup`` would do it with an ``xdist_group``
    mark, but it stopped grouping under pytest 9.2, silently
    (https://github.com/pytest-dev/pytest-xdist/issues/1386); ``loadfile``
    would also serialize every test of a file, such as the thirteen notebook
    runs of ``test_notebooks_rerun.py``. Units go out in collection order
    (see :func:`pytest_collection_modifyitems`), longest first.
    """
    if config.getvalue("dist") != "load":
        return None  # the user chose another mode: respect it
    from xdist.scheduler import LoadScopeScheduling

    class NotebookScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

    config.option.loadscopereorder = False  # keep the order chosen below, not "most items first"
    return NotebookScheduling(config, log)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: twice as many workers as CPUs, because the suite waits part of its time.

    Part of the suite waits rather than computes (a kernel starting, a
    handshake timing out, a browser, a subprocess), so extra workers fill the
    gaps; each costs about 5 s of CPU to collect the tests and about 250 MB
    with its kernel. On 2 cores (2,595 tests, 2026-12-07 morning) the whole
    suite took 129 s on 3 workers, 116 s on 4, 111 s on 5 and 116 s on 6.
    Servers have stopped at once since (lab_helpers/serving.py), so fewer
    tests wait: with 2,493 tests, 4 and 5 workers were within the machine's
    noise of each other (medians 89.5 s over five runs and 89.3 s over
    eight), and 4 use less CPU and memory: hence 2 x CPUs, at most 8 more
    than the CPUs on a large machine. Fewer tests wait since attempt() stops
    waiting for a record that cannot come, yet 3 workers still lost to 4
    (2,715 tests, alternating runs: 92.2 and 95.2 s against 83.8 and 83.3 s).
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides when it is set.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    usable = usable or 1
    return min(2 * usable, usable + 8)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "notebook: runs notebooks in a kernel (or a browser); `-m 'not notebook'` is the fast loop"
    )


def _is_notebook_cell(item: pytest.Item) -> bool:
    return item.path.suffix == ".ipynb"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark nbval's cells ``notebook``, and run what runs notebooks first.

    Notebook runs are the longest units; started first, they overlap with the
    many short tests instead of leaving one worker busy at the end. The sort
    is stable, so each notebook's cells keep their order.
    """
    for item in items:
        if _is_notebook_cell(item):
            item.add_marker(pytest.mark.notebook)
    items.sort(key=lambda item: item.get_closest_marker("notebook") is None)
