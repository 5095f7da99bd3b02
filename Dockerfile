# syntax=docker/dockerfile:1
#
# The kommo-operator image: one static binary, /kommo-operator, whose first argument picks the
# half to run (`controller` or `webhook`, see config/controller and config/webhook).
#
#   make docker-build IMG=ghcr.io/kommo-operator/kommo-operator:dev
#   docker buildx build --platform linux/amd64,linux/arm64 -t IMG --push .
#
# test/manifests checks this file against the Makefile and the manifests: the build command is
# the Makefile's `build` recipe, the COPY lines bring in every package the binary imports, and
# USER matches the Deployments' runAsUser.

# The builder runs on the build machine's own platform and cross-compiles (no cgo), so a
# multi-platform build never runs the Go toolchain under emulation.
FROM --platform=$BUILDPLATFORM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH
WORKDIR /workspace

# Modules first: this layer is rebuilt only when go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download

# The sources of the binary: package main (main.go, cmd_*.go; .dockerignore drops the tests)
# and the packages it imports.
COPY *.go ./
COPY api/ api/
COPY controllers/ controllers/
COPY webhook/ webhook/
COPY kommo/ kommo/

# Exactly the Makefile's `build` recipe, for the target platform.
RUN --mount=type=cache,target=/root/.cache/go-build \
    GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /workspace/bin/kommo-operator .

# Distroless static: CA certificates and tzdata, no shell, no package manager; nonroot runs as
# 65532, the runAsUser of both Deployments (restricted Pod Security).
FROM gcr.io/distroless/static:nonroot
LABEL org.opencontainers.image.source="https://github.com/kommo-operator/kommo-operator" \
      org.opencontainers.image.title="kommo-operator" \
      org.opencontainers.image.description="Kubernetes operator for installs of a public Kommo integration"
WORKDIR /
COPY --from=builder /workspace/bin/kommo-operator /kommo-operator
USER 65532:65532
ENTRYPOINT ["/kommo-operator"]
