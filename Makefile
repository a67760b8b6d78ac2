# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs the pinned dependencies the first time (stamp file .venv/.installed).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The CPU build of torch 2.13.0 is the one this project is tested with (it lies on disk on our machines).
TORCH  ?= torch==2.13.0

.PHONY: demo test bench lint system-deps audio-deps clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[dev,tensorboard]'
	touch $(STAMP)

# FluidSynth (with its TimGM6mb General MIDI soundfont) renders MIDI to audio; without it tunesmith
# falls back to its own additive synthesizer and says so. Debian's Chromium runs the web studio's browser
# test (in tests/test_web.py, through Playwright; about 80 s to install the first time); without it
# that test is skipped and says why. jackd2: a JACK dummy server gives `tunesmith live`'s test real MIDI
# ports where the machine has no ALSA sequencer (containers, CI); without it that test is skipped.
audio-deps:
	@command -v fluidsynth >/dev/null 2>&1 || { \
	  echo "installing fluidsynth (apt)"; \
	  (apt-get install -y -q fluidsynth >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q fluidsynth >/dev/null 2>&1)) || \
	  echo "fluidsynth could not be installed: audio will use the built-in fallback synthesizer"; }

system-deps: audio-deps
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (apt) for the browser test"; \
	  (apt-get install -y -q chromium >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1)) || \
	  echo "chromium could not be installed: the browser test will be skipped"; }
	@command -v jackd >/dev/null 2>&1 || { \
	  echo "installing jackd2 (apt) for the live MIDI port test"; \
	  (DEBIAN_FRONTEND=noninteractive apt-get install -y -q jackd2 >/dev/null 2>&1 || \
	   (apt-get update -q >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q jackd2 >/dev/null 2>&1)) || \
	  echo "jackd2 could not be installed: the live test over real MIDI ports will be skipped"; }

demo: $(STAMP) audio-deps
	$(BIN)/tunesmith demo --out demo-output

test: $(STAMP) system-deps
	$(BIN)/python -m pytest

# Side-by-side speed benchmarks (quality reports such as token_models.py and jsb.py take checkpoints).
BENCHES := ingest generation training memorization midinet
bench: $(STAMP)
	for b in $(BENCHES); do echo "== benchmarks/$$b.py"; $(BIN)/python benchmarks/$$b.py || exit 1; done

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) demo-output runs .pytest_cache
