# lambdascope: the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
LS := .venv/bin/lambdascope
DEMO_ARGS ?=

.PHONY: help setup build demo test test-rust test-python bench quality clean

help:
	@echo "make demo   set up, generate data, train in the background, serve the dashboard on :8000"
	@echo "            (options: make demo DEMO_ARGS=\"--traces 50000 --minutes 60 --port 8080\")"
	@echo "make test   install what is missing, build, run cargo test and pytest"
	@echo "make bench  speed benchmarks (figures printed, nothing asserted)"

setup:
	@scripts/setup.sh

build: setup

demo: setup
	$(LS) demo $(DEMO_ARGS)

test:
	@scripts/setup.sh --test
	$(MAKE) --no-print-directory test-rust test-python

test-rust:
	cd lambda_gen_rs && cargo test --release --offline -q

test-python:
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/bench_generator.py
	$(PY) bench/bench_ddp.py

quality: setup
	$(PY) bench/quality.py --minutes 60

clean:
	rm -rf lambda_gen_rs/target .venv data artifacts
