# The two commands of the README: `make demo` and `make test`.
# Both set up what they need first (Debian packages when root, .venv, npm packages).
VENV ?= .venv
PYTEST_ARGS ?=

.PHONY: demo test setup clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	$(VENV)/bin/course demo

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) node_modules .course-state autograded answer_keys datasets/build datasets/hidden
