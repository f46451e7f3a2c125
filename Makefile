# The two commands of the README. Each installs what is missing, builds into build/, then runs.
BUILD ?= build
JOBS  ?= $(shell nproc)
export CCACHE_BASEDIR := $(CURDIR)
export CCACHE_DIR ?= $(HOME)/.cache/ccache

.PHONY: demo test test-unit build deps clean

deps:
	@bash .ci/install-deps

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER_LAUNCHER=ccache

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

demo: build
	$(BUILD)/floe train --config docs/examples/demo.toml --summary $(BUILD)/demo-summary.json --metrics $(BUILD)/demo-metrics.jsonl \
	  --trace $(BUILD)/demo-trace.json --report $(BUILD)/demo-report.html

test: build
	cd $(BUILD) && ctest --output-on-failure --timeout 900

# The fast tier only (docs/testing.md): ctest's `unit` label.
test-unit: build
	cd $(BUILD) && ctest -L unit -j $(JOBS) --output-on-failure --timeout 900

clean:
	rm -rf $(BUILD)
