# The two commands of the README: `make demo` and `make test`. Each installs what it needs first.
.PHONY: setup demo test check bench

setup:
	@bash scripts/setup.sh

demo: setup
	@node --import tsx src/cli/main.ts demo

check: setup
	@echo "[test] type-check (tsc)" && npx --no-install tsc --noEmit
	@echo "[test] lint (eslint, prettier)" && npx --no-install eslint . && npx --no-install prettier --check . >/dev/null
	@echo "[test] layers (npm run deps)" && node --import tsx scripts/check-layers.ts

# Node 20's test runner does not expand globs: the shell finds the test files.
test: check
	@echo "[test] unit and integration tests" && node --import tsx --test --test-reporter=spec --test-concurrency=1 $$(find test -name '*.test.ts' | sort)
