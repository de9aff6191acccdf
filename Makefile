# Thin front door over scripts/ and meson. Every target installs what it
# needs first (scripts/setup.sh is idempotent), so these work on a fresh
# Debian 12 machine.
BUILD ?= build
ASAN_BUILD ?= build-asan
MESON_TEST_ARGS ?=

.PHONY: all setup build demo test test-asan bench format clean

all: build

setup:
	@scripts/setup.sh $(BUILD)

build: setup
	@ninja -C $(BUILD)

# The main job: the whole system on its embedded default configuration.
demo: build
	@scripts/demo.sh $(BUILD) $(DEMO_ARGS)

# Every test (unit, packet fixtures, netns). Tests that need root, bpffs or
# hugepages and lack them report SKIP with the reason.
test: build
	@meson test -C $(BUILD) --print-errorlogs $(MESON_TEST_ARGS)

# The unit tests again under AddressSanitizer and UndefinedBehaviorSanitizer.
test-asan:
	@scripts/setup.sh $(ASAN_BUILD) -Db_sanitize=address,undefined -Db_lundef=false
	@ninja -C $(ASAN_BUILD)
	@meson test -C $(ASAN_BUILD) --print-errorlogs --suite unit $(MESON_TEST_ARGS)

bench: build
	@scripts/bench.sh $(BUILD)

format:
	@git ls-files '*.cc' '*.h' '*.c' | xargs clang-format -i

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
