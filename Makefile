# Autoloader. `make` or `make help` lists the targets.
# Targets that need PostgreSQL use $DATABASE_URL when it is set, otherwise a private cluster
# found through .local/pg that scripts/pg.sh initialises once and starts on a free loopback port.
# `make test` likewise uses $AUTOLOADER_TEST_S3_ENDPOINT, or the S3 server of scripts/s3.sh.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

CARGO ?= cargo
# Builds use the committed .sqlx/ query data, so they never need a live database.
export SQLX_OFFLINE ?= true

# Prefix for recipes that need a database: use $DATABASE_URL or start the local cluster.
WITH_DB = DATABASE_URL="$${DATABASE_URL:-$$(scripts/pg.sh start)}"
# Prefix for recipes that need S3: use $AUTOLOADER_TEST_S3_ENDPOINT or start the local server
# (moto, from the Python venv scripts/pyenv.sh builds under .local/py).
WITH_S3 = AUTOLOADER_TEST_S3_ENDPOINT="$${AUTOLOADER_TEST_S3_ENDPOINT:-$$(scripts/s3.sh start)}"

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  \033[1m%-14s\033[0m %s\n", $$1, $$2}'

.PHONY: run
run: ## Run Autoloader locally (starts PostgreSQL when DATABASE_URL is unset)
	$(CARGO) build --release -p autoloader-api -p autoloader-worker
	@$(WITH_DB); export DATABASE_URL; exec scripts/run.sh

.PHONY: test
test: ## Run every test against a real PostgreSQL and a local S3 server
	$(CARGO) build --workspace --all-targets
	@mkdir -p .local
	@scripts/chromium.sh
	@$(WITH_DB); export DATABASE_URL; $(WITH_S3); export AUTOLOADER_TEST_S3_ENDPOINT; \
	  rc=0; $(CARGO) test --workspace --no-fail-fast 2>&1 | tee .local/test.log || rc=$$?; \
	  scripts/test-summary.sh .local/test.log; exit $$rc

.PHONY: screenshots
screenshots: ## Take the README's screenshots of the dashboard (docs/screenshots/) in headless Chromium
	$(CARGO) build -p autoloader-api -p autoloader-worker
	@scripts/chromium.sh
	@$(WITH_DB); export DATABASE_URL; \
	  AUTOLOADER_SCREENSHOTS_DIR="$(CURDIR)/docs/screenshots" \
	  $(CARGO) test -p autoloader-tests --test browser -- every_page_passes_axe

.PHONY: migrate
migrate: ## Apply pending database migrations
	$(CARGO) build --release -p autoloader-api
	@$(WITH_DB); export DATABASE_URL; target/release/autoloader-api --migrate-only

.PHONY: db
db: ## Start the local PostgreSQL and print its DATABASE_URL
	@scripts/pg.sh start

.PHONY: db-stop
db-stop: ## Stop the local PostgreSQL (its data is kept)
	@scripts/pg.sh stop

.PHONY: db-destroy
db-destroy: ## Stop the local PostgreSQL and delete its data
	@scripts/pg.sh destroy

.PHONY: psql
psql: ## Open psql on the database
	@$(WITH_DB); psql "$$DATABASE_URL"

.PHONY: fuzz
fuzz: ## Fuzz the running API with schemathesis against its OpenAPI document
	$(CARGO) build --release -p autoloader-api
	@$(WITH_DB); export DATABASE_URL; scripts/fuzz.sh

.PHONY: lint
lint: ## Check formatting and clippy (warnings are errors)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

.PHONY: fmt
fmt: ## Format the code
	$(CARGO) fmt --all

.PHONY: sqlx-prepare
sqlx-prepare: ## Refresh .sqlx/ (the checked queries' data) after changing a query
	@$(WITH_DB); export DATABASE_URL; \
	  rm -rf .sqlx && mkdir .sqlx && \
	  $(CARGO) clean -p autoloader -p autoloader-api -p autoloader-worker -p autoloader-tests && \
	  SQLX_OFFLINE=false SQLX_OFFLINE_DIR="$(CURDIR)/.sqlx" $(CARGO) check --workspace --all-targets
	@echo "$$(ls .sqlx | wc -l) queries in .sqlx/"

.PHONY: bench
bench: ## Run the benchmarks (see BENCHMARKS.md)
	cd bench && $(CARGO) build --release
	@mkdir -p bench/results
	@aps=""; \
	  if { [ -x bench/.venv/bin/python ] || python3 -m venv bench/.venv; } \
	     && bench/.venv/bin/pip install -q -r bench/apscheduler/requirements.txt; then \
	    aps="--apscheduler-python $(CURDIR)/bench/.venv/bin/python"; \
	  else echo "bench: no Python virtualenv with APScheduler; its comparison is skipped"; fi; \
	  $(WITH_DB); export DATABASE_URL; \
	  bench/target/release/bench-scheduler all $$aps 2>&1 | tee bench/results/bench.log
	$(CARGO) build --release -p autoloader-api
	@$(WITH_DB); export DATABASE_URL; scripts/bench-api.sh | tee bench/results/api.md
	@$(WITH_DB); export DATABASE_URL; scripts/bench-metrics.sh | tee bench/results/metrics.md
	@$(WITH_DB); export DATABASE_URL; scripts/bench-ingest.sh
	@$(WITH_DB); export DATABASE_URL; scripts/bench-maintenance.sh
	@$(WITH_DB); export DATABASE_URL; scripts/bench-discovery.sh

.PHONY: bench-stats
bench-stats: ## GET /api/v1/ingestions/{id}/stats with 1M runs in the table, each window (see BENCHMARKS.md)
	$(CARGO) build --release -p autoloader-api -p autoloader-worker
	@$(WITH_DB); export DATABASE_URL; scripts/bench-stats.sh | tee bench/results/stats.md

.PHONY: bench-discovery
bench-discovery: ## Discovery among 1M loaded local files and 100k on S3: incremental vs full vs a plain listing (see BENCHMARKS.md)
	@$(WITH_DB); export DATABASE_URL; scripts/bench-discovery.sh

.PHONY: bench-record-cap
bench-record-cap: ## One 1 GiB record in JSON lines, a JSON array and CSV against the record cap (see BENCHMARKS.md)
	@$(WITH_DB); export DATABASE_URL; scripts/bench-record-cap.sh

.PHONY: bench-maintenance
bench-maintenance: ## pyiceberg's read time of a day of one-minute files, before and after one compaction (see BENCHMARKS.md)
	@$(WITH_DB); export DATABASE_URL; scripts/bench-maintenance.sh

.PHONY: bench-netns
bench-netns: ## Recovery times of worker hosts cut off from PostgreSQL, medians of 5 rounds of tests/tests/netns.rs (root; see BENCHMARKS.md)
	@$(WITH_DB); export DATABASE_URL; scripts/bench-netns.sh | tee bench/results/netns.md

.PHONY: bench-ingest
bench-ingest: ## Ingestion throughput vs pyiceberg, 1 GB of JSON (plain and gzipped) and Parquet (see BENCHMARKS.md)
	@$(WITH_DB); export DATABASE_URL; scripts/bench-ingest.sh
