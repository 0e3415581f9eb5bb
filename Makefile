# The two commands of the README: `make book` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
# Progress bars off and a fixed thread count: stored notebook outputs stay identical from run to run.
export MFKIT_PROGRESS ?= 0
export MFKIT_THREADS ?= 1
export PYTHONHASHSEED = 0

.PHONY: install book test unit nbval notebooks clean

$(BIN)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

install: $(BIN)/.installed

## Build the HTML book into _build/html, executing every chapter.
book: install
	$(BIN)/jupyter-book build --all . -W -n --keep-going

## Every test: unit tests; nbval over the chapters (each notebook re-run and compared with its stored outputs);
## then the book is built and every page checked in headless Chromium (installed with apt-get when missing).
test: install
	$(BIN)/python -m pytest tests --ignore=tests/test_book_html.py
	$(BIN)/python -m pytest --nbval --nbval-current-env --nbval-sanitize-with nbval_sanitize.cfg book
	$(BIN)/jupyter-book build --all . -W -n --keep-going
	MFKIT_BOOK_HTML=_build/html $(BIN)/python -m pytest tests/test_book_html.py

unit: install
	$(BIN)/python -m pytest tests --ignore=tests/test_book_html.py

nbval: install
	$(BIN)/python -m pytest --nbval --nbval-current-env --nbval-sanitize-with nbval_sanitize.cfg book

## Re-execute the chapters in place (what is committed): `make notebooks NB=book/01_data_preparation.ipynb` for one.
NB ?= book/*.ipynb
notebooks: install
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 $(NB)

clean:
	rm -rf _build .pytest_cache
