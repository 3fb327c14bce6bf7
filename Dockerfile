# syntax=docker/dockerfile:1
# Build stage: Rust with libclang for pg_query's bindings.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN scripts/build-release.sh /out

# Runtime stage: no compiler, non-root, configuration and certificates mounted.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/schemagate --create-home schemagate \
    && mkdir -p /etc/schemagate/certs \
    && chown -R schemagate /etc/schemagate
COPY --from=build /out/schemagate /usr/local/bin/schemagate
COPY rules.yaml /etc/schemagate/rules.yaml
USER schemagate
WORKDIR /var/lib/schemagate
VOLUME ["/etc/schemagate", "/var/lib/schemagate"]
# 6432: PostgreSQL clients; 6433: admin API (bind it to 0.0.0.0 in rules.yaml only behind a trusted network).
EXPOSE 6432 6433
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD curl -fsS http://127.0.0.1:6433/healthz || exit 1
ENTRYPOINT ["/usr/local/bin/schemagate"]
CMD ["serve", "--config", "/etc/schemagate/rules.yaml"]
