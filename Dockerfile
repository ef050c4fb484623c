# syntax=docker/dockerfile:1
# Strata storage node image: build from source on Debian bookworm, run on
# bookworm-slim with only the shared libraries the binaries load.
#
#   docker build -t strata:dev .
#   docker run -p 50051:50051 -p 9090:9090 -v strata-data:/data strata:dev
#
# Only Debian's apt repositories are used: no other downloads. The image is
# verified without a daemon or registry by deploy/verify-image.sh (see
# deploy/README.md).

############################ build stage ####################################
FROM debian:bookworm AS build
# Marks the build-stage layers so deploy/verify-image.sh can prune stale ones.
LABEL strata.stage=build

# Same set as STRATA_BUILD_DEPS in scripts/lib.sh, minus the test-only
# packages (tests are off here).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config ca-certificates \
      libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc \
      libabsl-dev prometheus-cpp-dev libspdlog-dev nlohmann-json3-dev \
      libxxhash-dev liblz4-dev libzstd-dev libsnappy-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .

# Only the two binaries the image ships are built (not the offline tools).
# Parallel compile jobs; empty means one per core.
ARG JOBS=""
# The commit the image is built from (.git is not in the build context);
# shown by strata_build_info{git_sha}.
ARG GIT_SHA=unknown
RUN cmake -S /src -B /build -G Ninja -DSTRATA_GIT_SHA="${GIT_SHA}" \
      -DCMAKE_BUILD_TYPE=Release -DSTRATA_BUILD_TESTS=OFF \
 && ninja -C /build -j "${JOBS:-$(nproc)}" strata-server strata \
 && mkdir -p /out/bin \
 && strip --strip-unneeded -o /out/bin/strata-server /build/server/strata-server \
 && strip --strip-unneeded -o /out/bin/strata /build/client/strata \
 && sh /src/deploy/image/runtime-packages.sh /out/bin/strata-server /out/bin/strata \
      > /out/runtime-packages.txt \
 && echo "runtime packages:" $(cat /out/runtime-packages.txt)

########################### runtime stage ###################################
FROM debian:bookworm-slim

LABEL org.opencontainers.image.title="strata" \
      org.opencontainers.image.description="Strata gRPC key-value storage node" \
      org.opencontainers.image.licenses="Apache-2.0"

# Exactly the packages that own the libraries the binaries load (found with
# ldd in the build stage), plus what apt pulls in for them.
COPY --from=build /out/runtime-packages.txt /tmp/runtime-packages.txt
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      $(cat /tmp/runtime-packages.txt) \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb /tmp/runtime-packages.txt

# Fixed uid/gid so volume ownership and Kubernetes' runAsUser/fsGroup match.
RUN groupadd --system --gid 10001 strata \
 && useradd --system --uid 10001 --gid 10001 --no-create-home \
      --home-dir /data --shell /usr/sbin/nologin strata \
 && mkdir -p /data \
 && chown 10001:10001 /data \
 && chmod 0750 /data

COPY --from=build /out/bin/strata-server /out/bin/strata /usr/local/bin/

USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# 50051: gRPC (strata.v1.KV, grpc.health.v1.Health, reflection).
# 9090: Prometheus metrics at /metrics.
EXPOSE 50051 9090
# strata-server drains in-flight RPCs, syncs the WAL and exits 0 on SIGTERM
# (within 10 s). Exec form: the server is PID 1 and receives the signal.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
  CMD ["/usr/local/bin/strata", "--addr=127.0.0.1:50051", "health"]
# Extra flags given to `docker run IMAGE ...` (or Kubernetes `args`) are
# appended; a repeated flag overrides the earlier value.
ENTRYPOINT ["/usr/local/bin/strata-server", \
            "--listen=0.0.0.0:50051", \
            "--metrics_listen=0.0.0.0:9090", \
            "--data_dir=/data"]
