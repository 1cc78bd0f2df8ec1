# The README's two commands: `make demo` and `make test`. Both install what
# is missing first. BUILD_DIR and JOBS may be overridden.
BUILD_DIR ?= build
# The clang tree with ASan+UBSan and the fuzz targets (scripts/test-sanitize.sh).
ASAN_BUILD_DIR ?= build-asan
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=

.PHONY: all deps configure build test test-sanitize demo bench format clean

all: build

deps:
	scripts/install-deps.sh

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=Release -DDRIFTSCOPE_WERROR=ON $(CMAKE_FLAGS)

configure: $(BUILD_DIR)/build.ninja

build: deps configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS) --timeout 900
	$(MAKE) --no-print-directory test-sanitize

# Unit tests under ASan+UBSan, then each fuzz target briefly (docs/testing.md).
test-sanitize: deps
	ASAN_BUILD_DIR=$(ASAN_BUILD_DIR) JOBS=$(JOBS) scripts/test-sanitize.sh

demo: build
	scripts/demo.sh $(BUILD_DIR)

bench: build
	$(BUILD_DIR)/bench/engine_bench

format:
	find engine server client tests bench fuzz -name '*.cc' -o -name '*.h' -o -name '*.cu' | xargs clang-format -i

clean:
	rm -rf $(BUILD_DIR) $(ASAN_BUILD_DIR)
