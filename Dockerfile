# The pilot image the Kubernetes backend's Jobs run (`pilot fleet run --backend k8s`): the
# pilot binary on a slim Debian, nothing else. Multi-stage: the Rust toolchain, CMake and
# libclang (LightGBM is built from C++ source) stay in the builder.
#
#   docker build -t registry.example.com/pilot:0.1.0 .
#   docker run --rm registry.example.com/pilot:0.1.0 fleet plan /examples/fleet-local.toml

FROM rust:1.95-slim-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential libclang-dev python3-pip pkg-config \
 && pip3 install --break-system-packages --no-cache-dir 'cmake>=3.28' \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The catalogs and models are compiled into the binary (include_dir), so the binary is all
# the runtime needs.
RUN cargo build --release --locked --bin pilot \
 && strip target/release/pilot

FROM debian:bookworm-slim
# libgomp: LightGBM's OpenMP threads; ca-certificates: the Hugging Face Hub over TLS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --create-home pilot
COPY --from=builder /src/target/release/pilot /usr/local/bin/pilot
COPY examples /examples
USER 10001
ENTRYPOINT ["pilot"]
CMD ["--help"]
