# Thin front for the README's two commands; the build itself is meson.
BUILD ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
BUILD_FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 40

.PHONY: all deps build demo check check-plain check-asan check-tsan check-fuzz check-clang check-e2e clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

demo: build
	scripts/demo.sh $(BUILD)

# Every test: plain gcc build, clang build, ASan+UBSan, TSan, bounded fuzzing.
check: deps check-plain check-clang check-asan check-tsan check-fuzz

check-plain: build
	meson test -C $(BUILD) --print-errorlogs

check-clang: deps
	[ -f build-clang/build.ninja ] || CC=clang meson setup build-clang -Dtests=false
	ninja -C build-clang

check-asan: deps
	[ -f $(BUILD_ASAN)/build.ninja ] || meson setup $(BUILD_ASAN) -Db_sanitize=address,undefined -Db_lundef=false
	ninja -C $(BUILD_ASAN)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
		meson test -C $(BUILD_ASAN) --print-errorlogs --no-suite bench --timeout-multiplier 3

check-tsan: deps
	[ -f $(BUILD_TSAN)/build.ninja ] || CC=clang meson setup $(BUILD_TSAN) -Db_sanitize=thread -Db_lundef=false
	ninja -C $(BUILD_TSAN)
	TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 \
		meson test -C $(BUILD_TSAN) --print-errorlogs --suite concurrency --timeout-multiplier 4

check-fuzz: deps
	[ -f $(BUILD_FUZZ)/build.ninja ] || CC=clang meson setup $(BUILD_FUZZ) -Dfuzz=true -Dtests=false
	ninja -C $(BUILD_FUZZ)
	scripts/run-fuzz.sh $(BUILD_FUZZ) $(FUZZ_SECONDS)

# End-to-end: a Linux guest under QEMU >= 10.1 drives a demo device through
# vfio-user-pci (docs/e2e.md). Not part of check: it needs a QEMU that Debian 12
# does not ship, and prints SKIP without one.
QEMU ?=
check-e2e: build
	BUILD="$(BUILD)" QEMU="$(QEMU)" tests/e2e/run.sh

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) $(BUILD_FUZZ) build-clang
