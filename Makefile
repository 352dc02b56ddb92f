.PHONY: run test bench contracts lock

run:  ## set up and run the whole system with a demo batch
	scripts/run.sh

test:  ## set up and run every test
	scripts/test.sh

bench:  ## end-to-end throughput against the naive path (N=200 reports)
	scripts/setup.sh && .venv/bin/python bench/end_to_end.py

contracts:  ## write JSON Schemas and the AsyncAPI document to contracts-export/
	scripts/setup.sh && .venv/bin/resultflow contracts export contracts-export

lock:  ## pin every dependency with hashes: requirements.lock, requirements-dev.lock (from pyproject.toml)
	scripts/lock.sh
