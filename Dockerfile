# Multi-stage build: compile in the Rust image, run from a slim Debian with a
# non-root user. Data lives in /data (a named volume in docker-compose.yml).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY schema ./schema
COPY src ./src
COPY benches ./benches
RUN cargo build --release --locked && strip target/release/miniloki

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home /data miniloki && mkdir -p /data && chown miniloki /data
COPY --from=build /src/target/release/miniloki /usr/local/bin/miniloki
USER miniloki
VOLUME ["/data"]
EXPOSE 3100 4317
HEALTHCHECK --interval=5s --timeout=3s --retries=10 CMD ["/usr/local/bin/miniloki", "check", "--url", "http://127.0.0.1:3100/ready"]
ENTRYPOINT ["/usr/local/bin/miniloki"]
CMD ["--listen", "0.0.0.0:3100", "--otlp-grpc-listen", "0.0.0.0:4317", "--data-dir", "/data"]
