# The two commands of the README: `make book` and `make test`. Each creates .venv and installs what it needs.
PYTHON ?= python3.11
VENV   ?= .venv
BIN     = $(VENV)/bin
# Progress bars off and a fixed thread count: stored notebook outputs stay identical from run to run.
export MFKIT_PROGRESS ?= 0
export MFKIT_THREADS ?= 1
export PYTHONHASHSEED = 0

.PHONY: install book test unit nbval nbval-perturbed notebooks browser java spark-cluster spark-cluster-stop \
	test-spark clean

# Notebook checks (CONTRIBUTING.md, "How a chapter is validated"): every chapter is re-run; a cell that raises fails
# (its asserts check the numbers, with tolerances); printed output is compared only for cells whose first line is
# `# NBVAL_CHECK_OUTPUT` (output no CPU, thread count or GPU can change). `make test` runs it twice: as it is, and
# perturbed (two threads: another summation order; ATEN_CPU_CAPABILITY=default: torch's non-vectorised kernels).
NBVAL = $(BIN)/python -m pytest -p no:cacheprovider --nbval-lax --nbval-current-env \
	--nbval-sanitize-with nbval_sanitize.cfg book

$(BIN)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

install: $(BIN)/.installed

## Build the HTML book into _build/html from the committed notebook outputs (nothing is executed;
## `make notebooks` re-executes every chapter first, if you want the book to show your machine's run).
book: install
	$(BIN)/jupyter-book build --all . -W -n --keep-going

## Every test: unit tests; the notebook checks twice (as they are, then perturbed: see NBVAL above);
## then the book is built and every page checked in headless Chromium (installed with apt-get when missing).
## The Spark tests (tests/test_spark.py) and Chapter 8 start a standalone Spark cluster on 127.0.0.1 (mfkit.spark_cluster:
## a master and two workers of one core and 1 GB) and stop every process of it when they end, also on failure.
test: install browser java
	$(BIN)/python -m pytest tests --ignore=tests/test_book_html.py
	$(NBVAL) -n 2 --dist loadfile
	MFKIT_THREADS=2 ATEN_CPU_CAPABILITY=default $(NBVAL)
	$(BIN)/jupyter-book build --all . -W -n --keep-going
	MFKIT_BOOK_HTML=_build/html $(BIN)/python -m pytest tests/test_book_html.py

## Headless Chromium for the browser test: Debian's package, installed with apt-get when missing (Playwright's own
## browser download does not work on the CI machines; the test drives /usr/bin/chromium).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || { \
		echo "The browser test needs Chromium at /usr/bin/chromium and apt-get could not install it:" \
		"run 'sudo apt-get install chromium' (Debian/Ubuntu) and re-run make test."; exit 1; }

## Java 17+ for Spark (Chapter 8, mfkit.spark): Debian's headless runtime, installed with apt-get when `java` is
## missing or older than 17 (pyspark itself comes from requirements.txt).
java:
	@v=$$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1); \
	if [ -z "$$v" ] || [ "$$v" -lt 17 ]; then \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless; } || { \
		echo "Spark (Chapter 8) needs Java 17 or newer and apt-get could not install it: run" \
		"'sudo apt-get install openjdk-17-jre-headless' (Debian/Ubuntu), or install a JDK 17+ and set JAVA_HOME."; \
		exit 1; }; \
	fi

## A standalone Spark cluster on 127.0.0.1 left running for a shell or a notebook: one master, two workers of one core
## and 1 GB each (pyspark's spark-class; web UIs on 127.0.0.1 only). It prints the master's URL: run tests against it
## with MFKIT_SPARK_MASTER=<url>. `make spark-cluster-stop` ends every process it started (by process id).
SPARK_STATE = .spark-cluster/state.json
spark-cluster: install java
	$(BIN)/python -m mfkit.spark_cluster start --workers 2 --cores 1 --memory 1g --state $(SPARK_STATE)

spark-cluster-stop:
	$(BIN)/python -m mfkit.spark_cluster stop --state $(SPARK_STATE)

## The Spark tests alone: they start their own cluster (or use MFKIT_SPARK_MASTER's) and stop it at the end.
test-spark: install java
	$(BIN)/python -m pytest tests/test_spark.py

unit: install
	$(BIN)/python -m pytest tests --ignore=tests/test_book_html.py

nbval: install
	$(NBVAL) -n 2 --dist loadfile

## The same notebook checks on another summation order and other CPU kernels (what another machine would run).
nbval-perturbed: install
	MFKIT_THREADS=2 ATEN_CPU_CAPABILITY=default $(NBVAL)

## Re-execute the chapters in place (what is committed): `make notebooks NB=book/01_data_preparation.ipynb` for one.
NB ?= book/*.ipynb
notebooks: install java
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 $(NB)

clean:
	rm -rf _build .pytest_cache .spark-cluster
