# The two commands of the README: `make book` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
# Progress bars off and a fixed thread count: stored notebook outputs stay identical from run to run.
export MFKIT_PROGRESS ?= 0
export MFKIT_THREADS ?= 2
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
	$(BIN)/jupyter-book build . -W -n --keep-going

## Every test: unit tests, then nbval over the chapters (each notebook re-run and compared with its stored outputs).
test: install
	$(BIN)/python -m pytest tests
	$(BIN)/python -m pytest --nbval --nbval-current-env --nbval-sanitize-with nbval_sanitize.cfg book

unit: install
	$(BIN)/python -m pytest tests

nbval: install
	$(BIN)/python -m pytest --nbval --nbval-current-env --nbval-sanitize-with nbval_sanitize.cfg book

## Re-execute the chapters in place (what is committed): `make notebooks NB=book/01_data_preparation.ipynb` for one.
NB ?= book/*.ipynb
notebooks: install
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 $(NB)

clean:
	rm -rf _build .pytest_cache
