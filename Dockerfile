# SPDX-License-Identifier: Apache-2.0
# duet container images (docs/kind.md builds them; tests/e2e builds them with
# podman from locally made Debian base images, so nothing here may assume a
# registry beyond Debian's archive).
#
#   docker build -t duet:dev .                      the daemons (default target)
#   docker build --target demo -t duet-demo:dev .   busybox app + web server
#                                                   for manifests/examples
#   docker build --target cfssl -t duet-cfssl:dev . the environment's signing
#                                                   service (manifests/signer)
#
# Stages: build (compile, run the unit tests: a failing test fails the image;
# the unit tests drive real peers, hence openssl, curl and python3),
# base (Debian slim + the runtime libraries + user 65532), demo, runtime.
# Layers are ordered from the least to the most often changed: packages, then
# the build files, then the sources, so an edit to a .c file reuses the
# package layers.

ARG DEBIAN_RELEASE=bookworm

FROM debian:${DEBIAN_RELEASE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        gcc libc6-dev make cmake pkg-config binutils \
        android-libboringssl-dev libcurl4-gnutls-dev libcjson-dev libcmocka-dev \
        libnghttp2-dev libprotobuf-c-dev protobuf-c-compiler \
        openssl curl python3 procps \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake/ cmake/
COPY common/ common/
COPY agent/ agent/
COPY sidecar/ sidecar/
COPY tests/CMakeLists.txt tests/
COPY tests/testlib/ tests/testlib/
COPY tests/unit/ tests/unit/
RUN cmake -S /src -B /build -DCMAKE_C_COMPILER=gcc -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DDUET_WERROR=ON -DCMAKE_INSTALL_PREFIX=/usr/local >/dev/null \
 && cmake --build /build -j"$(nproc)" \
 && cd /build && ctest -L unit --output-on-failure -j"$(nproc)" \
 && DESTDIR=/out cmake --install /build --strip >/dev/null

FROM debian:${DEBIAN_RELEASE}-slim AS base
# android-libboringssl: BoringSSL, found through the binaries' rpath;
# libcurl3-gnutls: the agent's remote issuer; libcjson1: configuration;
# libnghttp2-14 and libprotobuf-c1: the agent's CSI (gRPC) services.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        android-libboringssl libcurl3-gnutls libcjson1 libnghttp2-14 libprotobuf-c1 \
 && rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log \
 && groupadd --gid 65532 duet \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin duet

# The example application and resource of manifests/examples: busybox wget as
# the client, busybox httpd as the plain HTTP server. Not the daemons' image.
FROM base AS demo
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends busybox \
 && rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log \
 && mkdir -p /srv/www \
 && echo "hello from the duet example resource" >/srv/www/index.html
USER 65532:65532
ENTRYPOINT ["/bin/busybox"]
CMD ["httpd", "-f", "-v", "-p", "8080", "-h", "/srv/www"]

# The environment's CA as one signing service (manifests/signer): Debian's
# CFSSL 1.2, `cfssl serve`. It holds the CA key; the node agents do not.
# Not built on `base`: it needs none of the daemons' libraries.
FROM debian:${DEBIAN_RELEASE}-slim AS cfssl
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends golang-cfssl \
 && rm -rf /var/lib/apt/lists/* /var/log/apt/* /var/log/dpkg.log \
 && groupadd --gid 65532 duet \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin duet
USER 65532:65532
ENTRYPOINT ["/usr/bin/cfssl"]

# The default target: keep it last.
FROM base AS runtime
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="duet" \
      org.opencontainers.image.description="duet-agent (node mTLS certificate issuer and rotator) and duet-sidecar (mTLS proxy with hot reload)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="debian:bookworm-slim" \
      org.opencontainers.image.documentation="docs/kind.md"
COPY --from=build /out/usr/local/bin/duet-agent /out/usr/local/bin/duet-sidecar /usr/local/bin/
USER 65532:65532
# The agent is the default: `docker run IMAGE ca init ...` works as is, and
# the manifests give every container an explicit command (duet-sidecar for
# the sidecars), so neither daemon needs a shell to start.
ENTRYPOINT ["/usr/local/bin/duet-agent"]
CMD ["run", "--config", "/etc/duet/config/agent.json"]
