# The Strata image: the static `strata-broker` and `strata` binaries and nothing else.
#
# Build it with `scripts/build-image`, which compiles both binaries on the host (static,
# `-C target-feature=+crt-static`, release profile) into target/image/rootfs/ and then
# runs `docker build`. No stage is FROM a registry image: nothing is pulled, and the
# image holds nothing to patch but Strata itself. See docs/OPERATIONS.md, "Compose".
FROM scratch

# target/image/rootfs/ holds usr/local/bin/{strata-broker,strata} and an empty
# var/lib/strata/; owned by the unprivileged user the broker runs as.
COPY --chown=65532:65532 target/image/rootfs/ /

ENV PATH=/usr/local/bin \
    STRATA_DATA_DIR=/var/lib/strata \
    STRATA_LISTENERS__GRPC=0.0.0.0:7070 \
    STRATA_ADVERTISED__GRPC=127.0.0.1:7070 \
    STRATA_LISTENERS__ADMIN=0.0.0.0:7080

USER 65532:65532
WORKDIR /var/lib/strata
VOLUME /var/lib/strata
EXPOSE 7070 7080
# The broker's first SIGTERM starts its graceful shutdown (docs/OPERATIONS.md).
STOPSIGNAL SIGTERM

# Exec form: the broker is PID 1 and receives the signal itself. CMD rather than
# ENTRYPOINT, so that `docker run strata:dev strata …` runs the CLI and
# `docker run strata:dev strata-broker --version` the broker with other arguments.
CMD ["strata-broker"]
