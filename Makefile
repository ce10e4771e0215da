# The two commands a newcomer needs are in README.md: `make run` and `make test`.
.PHONY: run test build fuzz

run:
	go run ./cmd/outpost serve

build:
	go build -o outpost ./cmd/outpost

# Every tier: unit, conformance, end-to-end with real clients. Tiers whose
# service is missing are skipped locally and fail under CI=true. npm packages
# come from test/clients/package-lock.json.
test:
	@if command -v npm >/dev/null 2>&1; then \
		echo "npm ci (test/clients)"; \
		cd test/clients && npm ci --no-audit --no-fund --loglevel=error; \
	fi
	@unformatted="$$(gofmt -l .)"; if [ -n "$$unformatted" ]; then echo "not gofmt-ed:"; echo "$$unformatted"; exit 1; fi
	go vet ./...
	@# The fuzz binaries build at the lowest priority while the tests run
	@# (their instrumented builds take minutes), then .ci/fuzz runs them.
	@bins="$$(mktemp -d)"; \
	nice -n 19 .ci/fuzz build "$$bins" > "$$bins/build.log" 2>&1 & builder=$$!; \
	go test -race -count=1 -timeout 25m ./...; tests=$$?; \
	wait $$builder; built=$$?; cat "$$bins/build.log"; \
	if [ $$tests -ne 0 ]; then rm -rf "$$bins"; exit $$tests; fi; \
	if [ $$built -ne 0 ]; then echo "fuzz binaries failed to build"; rm -rf "$$bins"; exit $$built; fi; \
	FUZZ_BIN_DIR="$$bins" .ci/fuzz; fuzzed=$$?; rm -rf "$$bins"; exit $$fuzzed

# Every fuzz target for FUZZTIME (10s) each; FUZZ=regexp picks targets by name.
fuzz:
	.ci/fuzz
