# Two commands for a newcomer:
#   make book   set up .venv and the offline web assets, build the website, print where it is
#   make test   unit tests, every chapter in the quick profile, the strict build, the browser test
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := book

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HTML := _build/html
CHROMIUM := /usr/bin/chromium
# -W: warnings are errors; -n: broken cross-references too; --keep-going: report them all.
# --all: re-read every page, or warnings of unchanged pages would not show up again.
BUILD_FLAGS := -W -n --keep-going --all

.PHONY: book test setup web-assets explorer-assets build unit-tests notebooks browser-test chromium clean

book: setup web-assets explorer-assets build
	@echo
	@echo "The book is built. Open this file in a browser:"
	@echo "    $(CURDIR)/$(HTML)/index.html"

test:
	@echo "==> setup: .venv and web assets";               time $(MAKE) --no-print-directory setup web-assets explorer-assets
	@echo "==> [1/4] unit tests";                         time $(MAKE) --no-print-directory unit-tests
	@echo "==> [2/4] every chapter, quick profile (nbval)"; time $(MAKE) --no-print-directory notebooks
	@echo "==> [3/4] strict build of the website";          time $(MAKE) --no-print-directory build
	@echo "==> [4/4] every page in a real browser";         time $(MAKE) --no-print-directory browser-test
	@echo "==> all tests passed"

# ---- setup -------------------------------------------------------------------------
setup: $(VENV)/.installed

# Re-runs when requirements.txt or pyproject.toml change.
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# MathJax, require.js, the widget manager and onnxruntime-web (its one-thread wasm build), copied
# out of their npm packages so that the pages render math and widgets and run the latent explorer
# with no CDN (_ext/offline_assets.py points the build at them).
web-assets: web_assets/.installed

web_assets/.installed: package.json package-lock.json
	@if ! command -v npm >/dev/null; then \
	  echo "!!! npm not found: the book will load MathJax and the widget manager from CDNs,"; \
	  echo "!!! so math and widgets render only online. Install Node.js/npm for an offline book."; \
	  exit 0; \
	fi; \
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error; \
	rm -rf web_assets; mkdir web_assets; \
	cp -r node_modules/mathjax/es5 web_assets/mathjax; \
	cp node_modules/requirejs/require.js web_assets/require.js; \
	cp -r node_modules/@jupyter-widgets/html-manager/dist web_assets/html-manager; \
	rm -f web_assets/html-manager/*.map; \
	mkdir web_assets/onnxruntime; \
	cp node_modules/onnxruntime-web/dist/{ort.wasm.min.js,ort-wasm-simd-threaded.mjs,ort-wasm-simd-threaded.wasm} web_assets/onnxruntime/; \
	touch $@

# The latent explorer's decoders as ONNX files, derived from the shipped weights in pretrained/ ($DGM_PRETRAINED)
# (helpers/onnx_export.py; each checked against PyTorch). Served with the other web assets.
explorer-assets: setup web-assets
	@if [ -f web_assets/.installed ]; then $(MAKE) --no-print-directory web_assets/explorer/decoders.json; fi

web_assets/explorer/decoders.json: web_assets/.installed $(wildcard $(or $(DGM_PRETRAINED),pretrained)/*) helpers/onnx_export.py helpers/explore.py
	rm -rf web_assets/explorer
	OMP_NUM_THREADS=1 $(BIN)/python -m helpers.onnx_export web_assets/explorer

# ---- build -------------------------------------------------------------------------
# Pages come from the outputs committed in the notebooks (execute_notebooks: "off").
build:
	rm -rf $(HTML)
	$(BIN)/jupyter-book build $(BUILD_FLAGS) .

# ---- tests -------------------------------------------------------------------------
LOUD := !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!

# FID needs pytorch-fid's Inception weights in $TORCH_HOME/hub/checkpoints/; `python -m helpers.fid`
# finds them or downloads them. When they cannot be had (offline, no copy: exit status 3), the
# steps that need them are skipped ($(1) says which) with one loud message; in CI (CI=true) that
# fails instead, so CI never passes without FID. A broken weights file always fails.
# Leaves the check's exit status in the shell variable fid.
define check_fid_weights
fid=0; weights=$$($(BIN)/python -m helpers.fid 2>&1) || fid=$$?; \
if [ $$fid = 0 ]; then \
  echo "$$weights"; \
elif [ $$fid = 3 ] && [ "$${CI:-}" != true ]; then \
  echo; echo "$(LOUD)"; \
  echo "!!! FID SKIPPED: $(1)"; \
  echo "$$weights" | sed 's/^/!!! /'; \
  echo "$(LOUD)"; echo; \
else \
  echo "$$weights" >&2; \
  if [ $$fid = 3 ]; then echo "!!! In CI (CI=true) the FID tests and chapters must run: provide the weights." >&2; fi; \
  exit 1; \
fi
endef

# The chapters that compute FID: their code imports helpers.fid (source lines in the .ipynb JSON).
FID_CHAPTER_IMPORT := "(from helpers import [^"]*\bfid\b|from helpers\.fid import|import helpers\.fid)

unit-tests:
	@$(call check_fid_weights,the unit tests that run the Inception network (the rest run))
	$(BIN)/pytest -rs tests

# Runs every chapter top to bottom; --nbval-lax compares only cells marked NBVAL_CHECK_OUTPUT.
notebooks:
	@if ! compgen -G "book/*.ipynb" >/dev/null; then echo "no notebooks in book/ yet: nothing to run"; exit 0; fi; \
	fid_chapters=$$(grep -lE '$(FID_CHAPTER_IMPORT)' book/*.ipynb | tr '\n' ' ' || true); \
	$(call check_fid_weights,the chapters that compute FID: $$fid_chapters(every other chapter runs)); \
	skip=""; \
	if [ $$fid != 0 ]; then skip=$$(printf -- '--ignore=%s ' $$fid_chapters); fi; \
	BOOK_PROFILE=quick $(BIN)/pytest --nbval-lax --nbval-current-env $$skip book/

# Serves $(HTML) on 127.0.0.1 and loads every page in Debian's Chromium (not in `unit-tests`:
# pyproject.toml deselects the `browser` marker unless asked for, as here).
browser-test: chromium
	@if [ -x $(CHROMIUM) ]; then \
	  $(BIN)/pytest -m browser tests/browser; \
	elif [ "$${CI:-}" = true ]; then \
	  echo "!!! $(CHROMIUM) is missing: the browser test cannot run, and in CI it must." >&2; exit 1; \
	else \
	  echo; \
	  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
	  echo "!!! BROWSER TEST SKIPPED: $(CHROMIUM) not found, and it could not be installed"; \
	  echo "!!! (that needs root and apt-get: apt-get install chromium). Every other step ran."; \
	  echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
	  echo; \
	fi

# Debian's chromium; installed with apt-get when missing and running as root.
chromium:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium; \
	fi

clean:
	rm -rf _build web_assets node_modules
