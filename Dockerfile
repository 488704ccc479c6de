# Dockerfile: the leadflow programs on Debian bookworm, built from this
# source tree with the same Debian packages as `make` (DEB_PACKAGES in the
# Makefile; tests/integration/test_compose.py keeps the two in step).
#
#   docker build -t leadflow .
#   docker run --rm leadflow leadflow-project --help
#
# Build stage: compile, run the unit tests, install into /opt/leadflow.
FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      build-essential cmake pkg-config git \
      librdkafka-dev libavro-dev libpq-dev libcriterion-dev libjansson-dev \
      libmicrohttpd-dev libcurl4-openssl-dev libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && cmake --build /build -j"$(nproc)" \
 && (cd /build && ctest -L unit --output-on-failure) \
 && cmake --install /build --prefix /opt/leadflow

# Runtime stage: the shared libraries the programs link, curl for the
# health check, and the programs, run as an unprivileged user.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      librdkafka1 libavro23 libpq5 libjansson4 libmicrohttpd12 libcurl4 \
      ca-certificates curl \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /opt/leadflow/ /usr/local/
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin leadflow
USER leadflow
# leadflow-project --metrics 0.0.0.0:9464
EXPOSE 9464
CMD ["leadflow-project", "--help"]
