# syntax=docker/dockerfile:1
# The dlockd and dlock binaries in a small Debian image, for containers and Kubernetes (see
# docs/install.md and examples/kubernetes/).
#
# Built from the static (musl) binaries of the Linux release tarball, not from source: the
# image holds the same bytes as the tarball whose SHA-256 sum is published, and building it
# needs no Rust toolchain. The build context is the unpacked tarball, which carries this file:
#
#   tar xzf dlock-VERSION-linux-x86_64.tar.gz        # made by scripts/package.sh
#   docker build -t dlock dlock-VERSION-linux-x86_64
#   docker run --rm -p 3500:3500 -p 50001:50001 -v "$PWD/components:/etc/dlock/components:ro" \
#     dlock --app-id myapp --resources-path /etc/dlock/components --dapr-listen-addresses 0.0.0.0
#   docker run --rm --network host --entrypoint dlock dlock mykey 10   # the client

FROM debian:bookworm-slim
# ca-certificates: the system roots, for stores reached over TLS (the binaries need nothing
# else from the image).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 dlock \
    && useradd --system --uid 10001 --gid dlock --no-create-home --shell /usr/sbin/nologin dlock \
    && install -d -m 755 /etc/dlock/components
COPY dlockd dlock /usr/local/bin/
# A numeric user, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
USER 10001:10001
# Dapr's HTTP and gRPC API ports.
EXPOSE 3500 50001
ENTRYPOINT ["dlockd"]
# Inside a container loopback is not reachable from outside, so dlockd listens on every
# address of the container's network; set DAPR_API_TOKEN where others on that network must not
# lock. Arguments given to `docker run` replace all of these, as in the example above.
CMD ["--resources-path", "/etc/dlock/components", "--dapr-listen-addresses", "0.0.0.0"]
