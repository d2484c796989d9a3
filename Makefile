# lambdascope: the two commands a new user needs are `make demo` and `make test`.
SHELL := /bin/bash
PY := .venv/bin/python
LS := .venv/bin/lambdascope
DEMO_TRACES ?= 20000
DEMO_DATA ?= data/demo.jsonl

.PHONY: help setup build demo test test-rust test-python bench clean

help:
	@echo "make demo   build the generator, generate $(DEMO_TRACES) traces into $(DEMO_DATA), check them"
	@echo "make test   install what is missing, build, run cargo test and pytest"
	@echo "make bench  speed benchmarks (figures printed, nothing asserted)"

setup:
	@scripts/setup.sh

build: setup

demo: setup
	@mkdir -p $(dir $(DEMO_DATA))
	@if [ -s $(DEMO_DATA) ]; then echo "using existing $(DEMO_DATA)"; \
	else $(LS) generate $(DEMO_DATA) $(DEMO_TRACES) --seed 1; fi
	$(LS) check $(DEMO_DATA)

test:
	@scripts/setup.sh --test
	$(MAKE) --no-print-directory test-rust test-python

test-rust:
	cd lambda_gen_rs && cargo test --release --offline -q

test-python:
	$(PY) -m pytest -q

bench: setup
	$(PY) bench/bench_generator.py

clean:
	rm -rf lambda_gen_rs/target .venv data artifacts
