# syntax=docker/dockerfile:1
# gracehook: a static binary in an empty image, run as a numeric non-root user.
#
#   docker build -t ghcr.io/<you>/gracehook:0.1.0 .
#
# The build step is the one CI runs (bash .ci/static-build), so a green CI
# means this Dockerfile's binary builds and is static.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY .ci/static-build ./.ci/static-build
RUN bash .ci/static-build /out/gracehook

FROM scratch
COPY --from=build /out/gracehook /gracehook
# The same numeric user as the manifests' runAsUser: no /etc/passwd needed.
USER 65532:65532
EXPOSE 8443 9090
ENTRYPOINT ["/gracehook"]
CMD ["serve"]
