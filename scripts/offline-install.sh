#!/usr/bin/env bash
# Install the course without network access: build a wheelhouse where there is
# network, carry it (USB stick, shared folder), install from it where there is none.
#
#   scripts/offline-install.sh download WHEELHOUSE        # with network: fetch every package
#   scripts/offline-install.sh install WHEELHOUSE VENV    # without: a venv from the wheelhouse alone
#
# The wheelhouse holds wheels for the Python and platform that built it: build it
# with the same Python version and operating system as the room's machines.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}

case "${1:-}" in
  download)
    wheelhouse=${2:?usage: $0 download WHEELHOUSE}
    mkdir -p "$wheelhouse"
    # requirements.txt ends with "-e ." (this checkout): that part is installed from here, not downloaded.
    grep -v '^-e' requirements.txt > "$wheelhouse/requirements-pinned.txt"
    "$python" -m pip download --quiet --dest "$wheelhouse" -r "$wheelhouse/requirements-pinned.txt"
    # What pip needs to install "-e ." (the build backend, and what its editable build asks for),
    # so that step works offline too.
    "$python" -m pip download --quiet --dest "$wheelhouse" "hatchling>=1.27" "editables~=0.3"
    echo "Wheelhouse ready: $wheelhouse ($(ls "$wheelhouse" | wc -l) files)"
    ;;
  install)
    wheelhouse=${2:?usage: $0 install WHEELHOUSE VENV}
    venv=${3:?usage: $0 install WHEELHOUSE VENV}
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --no-index --find-links "$wheelhouse" -r "$wheelhouse/requirements-pinned.txt"
    "$venv/bin/python" -m pip install --quiet --no-index --find-links "$wheelhouse" -e .
    echo "Installed offline into $venv. Check the machine with: $venv/bin/python -m lab_helpers doctor"
    ;;
  *)
    echo "usage: $0 download WHEELHOUSE | install WHEELHOUSE VENV" >&2
    exit 2
    ;;
esac
