# leadflow front door. `make test` and `make demo` work on a fresh Debian
# bookworm machine as root: missing Debian packages are installed first.

BUILD    ?= build
SANBUILD ?= build-asan
FUZZBUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS     ?= $(shell nproc)
CMAKE_FLAGS ?=

# Everything the build, the tests and the demo need, from Debian's archive.
DEB_PACKAGES = build-essential cmake pkg-config git \
  librdkafka-dev libavro-dev libpq-dev libcriterion-dev libjansson-dev \
  libmicrohttpd-dev libcurl4-openssl-dev libssl-dev \
  postgresql postgresql-client kcat xxd python3 python3-avro python3-kafka \
  python3-lz4 python3-yaml curl groff-base chromium clang clang-format libclang-rt-14-dev valgrind \
  python3-confluent-kafka python3-psycopg2 prometheus

.PHONY: all deps build build-asan test test-asan demo clean format format-check chaos fuzz bench

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	done); \
	if [ -n "$$missing" ]; then \
	  echo "leadflow: installing missing Debian packages:" $$missing; \
	  if [ "$$(id -u)" != 0 ]; then echo "leadflow: run as root or install them yourself" >&2; exit 1; fi; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	fi

$(BUILD)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	cmake -S . -B $(SANBUILD) -DLF_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(SANBUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	cd $(SANBUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j $(JOBS)

# The long fault-injection set (tests/chaos/chaos.sh; the quick set runs in
# `make test`); about 20 minutes.
chaos: build
	tests/chaos/chaos.sh --long --bin $(BUILD)/bin

# libFuzzer targets (tests/fuzz), clang + ASan + UBSan, FUZZ_SECONDS each.
fuzz: deps
	cmake -S . -B $(FUZZBUILD) -DLF_FUZZ=ON -DCMAKE_C_COMPILER=clang
	cmake --build $(FUZZBUILD) -j $(JOBS)
	tests/fuzz/run.sh $(FUZZBUILD)/fuzz $(FUZZ_SECONDS)

# The side-by-side benchmark (bench/run.py, BENCHMARKS.md): a release build
# in build-release/, its own dev stack, one table on stdout (the rest goes
# to stderr). BENCH_QUICK=1 for a tiny run (what `make test` runs).
bench: deps
	@cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >&2
	@cmake --build build-release -j $(JOBS) >&2
	@/usr/bin/python3 bench/run.py --bin build-release/bin

demo: build
	tools/demo.sh $(BUILD)/bin

# Every C file the repository tracks, in the committed .clang-format style;
# format-check is what CI runs (tables meant to be read as tables sit
# between clang-format off/on).
format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(SANBUILD) $(FUZZBUILD) build-release
