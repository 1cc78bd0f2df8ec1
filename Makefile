# The README's two commands: `make demo` and `make test`. Both install what
# is missing first. BUILD_DIR and JOBS may be overridden.
BUILD_DIR ?= build
# The clang tree with ASan+UBSan and the fuzz targets (scripts/test-sanitize.sh).
ASAN_BUILD_DIR ?= build-asan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps configure build test test-sanitize test-docker demo bench format clean

all: build

deps:
	scripts/install-deps.sh

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release -DDRIFTSCOPE_WERROR=ON -DDRIFTSCOPE_KERAS_IMPORT=ON $(CMAKE_FLAGS)

configure: $(BUILD_DIR)/build.ninja

build: deps configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) --timeout 900
	$(MAKE) --no-print-directory test-sanitize
	$(MAKE) --no-print-directory test-docker

# Unit tests under ASan+UBSan, then each fuzz target briefly (docs/testing.md).
test-sanitize: deps
	ASAN_BUILD_DIR=$(ASAN_BUILD_DIR) JOBS=$(JOBS) scripts/test-sanitize.sh

# The images built from source and run with compose (tests/docker): starts
# dockerd if needed (root). DRIFTSCOPE_SKIP_DOCKER=1 skips it and says so.
test-docker: build
	@if [ -n "$$DRIFTSCOPE_SKIP_DOCKER" ]; then \
	  echo "*** test-docker SKIPPED: DRIFTSCOPE_SKIP_DOCKER is set; no image was built or run ***"; \
	else \
	  DRIFTSCOPE_BIN=$(abspath $(BUILD_DIR)) python3 -m pytest -q -s -rs tests/docker; \
	fi

demo: build
	scripts/demo.sh $(BUILD_DIR)

bench: build
	$(BUILD_DIR)/bench/engine_bench

format:
	find engine server client tests bench fuzz -name '*.cc' -o -name '*.h' -o -name '*.cu' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) $(ASAN_BUILD_DIR)
