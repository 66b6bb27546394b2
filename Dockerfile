# syntax=docker/dockerfile:1
# The dlockd and dlock binaries in a small Debian image, for containers and Kubernetes (see
# docs/install.md and examples/kubernetes/). Not built by the tests: CI has no container engine.
#
#   docker build -t dlock .
#   docker run --rm -p 3500:3500 -p 50001:50001 -v "$PWD/components:/etc/dlock/components:ro" \
#     dlock --app-id myapp --resources-path /etc/dlock/components --dapr-listen-addresses 0.0.0.0
#   docker run --rm --network host --entrypoint dlock dlock mykey 10   # the client
#
# Built from the repository root, so the whole crate (src/, proto/, build.rs, Cargo.lock) is
# the build context; .dockerignore keeps target/ and the test SDKs out of it.

# The static (musl) binaries, as in the Linux release tarball (scripts/package.sh): they need
# nothing from the image but its CA certificates.
FROM rust:1-slim-bookworm AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends musl-tools \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add x86_64-unknown-linux-musl
WORKDIR /src
COPY . .
# The cache mounts keep the registry and the compiled dependencies between builds.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bins --target x86_64-unknown-linux-musl \
    && install -D -m 755 target/x86_64-unknown-linux-musl/release/dlockd \
        target/x86_64-unknown-linux-musl/release/dlock /out/

FROM debian:bookworm-slim
# ca-certificates: the system roots, for stores reached over TLS.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 dlock \
    && useradd --system --uid 10001 --gid dlock --no-create-home --shell /usr/sbin/nologin dlock \
    && install -d -m 755 /etc/dlock/components
COPY --from=build /out/dlockd /out/dlock /usr/local/bin/
# A numeric user, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
# Dapr's HTTP and gRPC API ports.
EXPOSE 3500 50001
ENTRYPOINT ["dlockd"]
# Inside a container loopback is not reachable from outside, so dlockd listens on every
# address of the container's network; set DAPR_API_TOKEN where others on that network must not
# lock. Arguments given to `docker run` replace all of these, as in the example above.
CMD ["--resources-path", "/etc/dlock/components", "--dapr-listen-addresses", "0.0.0.0"]
