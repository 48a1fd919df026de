#!/usr/bin/env bash
# Set up biosig in ./.venv: Debian packages (text-to-speech voices, sox) when apt is usable, then
# the Python package with every optional extra (asr, train, mic, scale: see biosig/extras.py) and
# the test tools. Idempotent: a second run with unchanged pyproject.toml/constraints.txt returns
# in about a second.
#
#   bash scripts/setup.sh            # everything
#   BIOSIG_SKIP_APT=1 bash scripts/setup.sh   # never touch system packages
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON_BIN=${PYTHON:-}
if [ -z "$PYTHON_BIN" ]; then
  for cand in python3.11 python3.12 python3.10 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PYTHON_BIN=$cand; break; fi
  done
fi
[ -n "$PYTHON_BIN" ] || { echo "setup: no python3 found (Python 3.10-3.12 needed)" >&2; exit 1; }

# --- Debian packages used by the dictation tests and speech synthesis -----------------------
# (TTS voices, sox; PortAudio for `biosig dictate --mic`; PulseAudio and its ALSA plugin for the
# test that feeds --mic through a virtual microphone; Chromium and its driver for the test of
# the dictation page in a real browser)
APT_PACKAGES="espeak-ng festival festvox-us-slt-hts festvox-kallpc16k sox libsndfile1 libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins chromium chromium-driver"
if [ -z "${BIOSIG_SKIP_APT:-}" ] && command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1; then
  missing=""
  for p in $APT_PACKAGES; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then
      if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; fi
    fi
    if [ "$(id -u)" = 0 ] || [ -n "$SUDO" ]; then
      echo "setup: installing Debian packages:$missing"
      $SUDO apt-get update -qq
      DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
    else
      echo "setup: warning: cannot install Debian packages ($missing) without root; the" \
           "speech-synthesis tests will be skipped" >&2
    fi
  fi
fi

# --- Python environment -------------------------------------------------------------------------
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PYTHON_BIN"
  "$PYTHON_BIN" -m venv .venv
fi
stamp=.venv/.biosig-setup
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! .venv/bin/python -c "import biosig" 2>/dev/null; then
  echo "setup: installing biosig and its dependencies into .venv (first time: a few minutes)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[all,test]"
  echo "$want" > "$stamp"
fi
# numba compiles its kernels on first use (tens of seconds) and caches them in __pycache__:
# do it now, so that the first `biosig score qrs` starts warm (about a second when cached)
.venv/bin/python -m biosig.warmup
echo "setup: ready ($(.venv/bin/python -c 'import biosig, torch; print("biosig", biosig.__version__, "torch", torch.__version__)'))"
