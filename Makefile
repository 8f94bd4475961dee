# neurocompile: `make demo` runs the bundled model end to end, `make test` runs the test suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
MODEL := examples/checkpoints/spikingssm_sdigits.pt
DEMO_OUT := out/demo

.PHONY: setup demo test clean

# Find a Python 3.10 (lava-nc 0.10.0 imports only there): PATH first, then pyenv's versions folder.
$(PY):
	@set -e; \
	cand=""; \
	for p in python3.10 python3; do \
	  if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; then cand=$$(command -v $$p); break; fi; \
	done; \
	if [ -z "$$cand" ]; then \
	  root=$$(pyenv root 2>/dev/null || echo $$HOME/.pyenv); \
	  for p in $$root/versions/3.10.*/bin/python3; do \
	    if [ -x "$$p" ]; then cand=$$p; fi; \
	  done; \
	fi; \
	if [ -z "$$cand" ]; then echo "error: no Python 3.10 found on PATH or in pyenv's versions folder; lava-nc 0.10.0 needs Python 3.10. Install one (e.g. 'pyenv install 3.10') and run 'make setup' again." >&2; exit 1; fi; \
	echo "Using $$cand ($$($$cand --version))"; \
	rm -rf $(VENV); \
	$$cand -m venv $(VENV); \
	$(PY) -m pip install -q --upgrade pip; \
	$(PY) -m pip install -q -e '.[dev]' || { rm -rf $(VENV); echo "error: installing neurocompile into $(VENV) failed (see above)" >&2; exit 1; }; \
	$(PY) -m pip install -q --no-deps 'spikingjelly==0.0.0.0.14' 'norse==1.1.0' 'nirtorch==2.6' || { rm -rf $(VENV); echo "error: installing the test-only neuron libraries spikingjelly/norse failed (see above)" >&2; exit 1; }

setup: $(PY)

demo: $(PY)
	@mkdir -p $(DEMO_OUT)
	$(VENV)/bin/neurocompile export $(MODEL) --target loihi2 -o $(DEMO_OUT)/spikingssm_sdigits.loihi2 --force
	$(VENV)/bin/neurocompile simulate $(DEMO_OUT)/spikingssm_sdigits.loihi2 --dataset sdigits --json $(DEMO_OUT)/simulate.json
	$(VENV)/bin/neurocompile report $(DEMO_OUT)/spikingssm_sdigits.loihi2 --dataset sdigits --json $(DEMO_OUT)/report.json --html $(DEMO_OUT)/report.html
	@$(PY) -c 'import json; s = json.load(open("$(DEMO_OUT)/simulate.json")); r = json.load(open("$(DEMO_OUT)/report.json")); \
	print("\nSummary: integer accuracy %.2f %% (float %.2f %%) on %d held-out samples; %.0f spikes/sample; %.3g J/sample (%s), %.3g s/step" % ( \
	100 * s["accuracy"], 100 * s["float_accuracy"], s["samples"], sum(l["spikes"] for l in s["layers"]) / s["samples"], \
	r["energy_per_sample_j"], "estimate" if r["is_estimate"] else "published constants", r["latency_per_step_s"]))'

# Lint and type-check first (seconds with mypy's cache; pyproject.toml says which modules are strict), then the suite
# on every core (pytest-xdist); pytest's exit 5 (nothing collected) is not a failure.
test: $(PY)
	@$(VENV)/bin/ruff check neurocompile tests benchmarks examples
	@$(PY) -m mypy
	@$(PY) -m pytest -q -p no:cacheprovider -n auto tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
