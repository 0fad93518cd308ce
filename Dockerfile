# syntax=docker/dockerfile:1
# The delink worker image: `docker build -t delink:dev .` (see deploy/README.md).
# Stage 1 builds a stripped binary; stage 2 is a slim runtime that runs it as a
# non-root user and works on a read-only root filesystem.

FROM rust:1-bookworm AS build
# rdkafka's bundled librdkafka: a C toolchain, make and the OpenSSL headers.
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential pkg-config libssl-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --profile dist --bin delink \
 && install -D -m 0755 target/dist/delink /out/delink

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 delink \
 && useradd --system --uid 10001 --gid delink --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin delink
COPY --from=build /out/delink /usr/local/bin/delink
COPY config/ /etc/delink/
# Writable paths come from volumes: the data directory and, for the embedded
# key store's default keyring, a keyring directory (use a Secret instead).
ENV DELINK_CONFIG=/etc/delink/delink.toml \
    DELINK_LOG_FORMAT=json \
    DELINK_KEYRING_DIR=/var/lib/delink-keyring
USER 10001:10001
WORKDIR /var/lib/delink
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/delink"]
CMD ["run", "--kafka"]
