# The few commands a newcomer needs. Run them inside a virtual environment.
.PHONY: install lint format test test-pg bench demo ci

install:
	pip install -e '.[dev]'

lint:
	ruff check .
	ruff format --check .
	mypy
	lint-imports

format:
	ruff format .
	ruff check --fix .

test:
	pytest

# The same tests on PostgreSQL as well (each test runs on SQLite and on PostgreSQL).
test-pg:
	TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test pytest

bench:
	python bench/intake.py

demo:
	gongkai demo

ci:
	bash .ci/run
