//! The broker's listeners and the addresses it advertises for them: `[listeners]` (`grpc`,
//! `external`, `admin`) and `[advertised]` (`grpc`, `external`) in the file, the
//! `--listen`, `--external-listen`, `--admin-listen`, `--advertised-address` and
//! `--external-advertised-address` flags, and `STRATA_LISTENERS__…` /
//! `STRATA_ADVERTISED__…` in the environment.
//!
//! The internal gRPC listener serves clients, other brokers and the controller quorum; its
//! advertised address is what other brokers and clients of that listener dial. The
//! optional external listener serves the same client services to clients outside the
//! brokers' network (a host in front of containers, a NAT): metadata asked for on it names
//! every broker at its external advertised address. An external advertised address
//! without an external listener is refused, since nobody would answer at it.

use serde::Deserialize;

use super::merger::Merger;
use super::{ConfigError, HostPort, ServeArgs};

/// `[listeners]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileListeners {
    grpc: Option<String>,
    external: Option<String>,
    admin: Option<String>,
}

/// `[advertised]` in the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileAdvertised {
    grpc: Option<String>,
    external: Option<String>,
}

/// The merged listener settings.
#[derive(Debug)]
pub(super) struct ListenerSettings {
    pub(super) listen: HostPort,
    pub(super) admin_listen: HostPort,
    pub(super) advertised_address: String,
    pub(super) external_listen: Option<HostPort>,
    pub(super) external_advertised_address: Option<String>,
}

/// Picks the listeners and advertised addresses (flag/env > file > default) and checks
/// that each is `HOST:PORT`.
pub(super) fn pick(
    merger: &mut Merger<'_>,
    args: &ServeArgs,
    file_listeners: FileListeners,
    file_advertised: FileAdvertised,
) -> Result<ListenerSettings, ConfigError> {
    let listen_text = merger.pick(
        "listeners.grpc",
        "listen",
        args.listen.clone(),
        file_listeners.grpc,
        "127.0.0.1:7070".to_owned(),
    );
    let admin_listen_text = merger.pick(
        "listeners.admin",
        "admin_listen",
        args.admin_listen.clone(),
        file_listeners.admin,
        "127.0.0.1:7080".to_owned(),
    );
    let external_listen_text = merger.pick(
        "listeners.external",
        "external_listen",
        args.external_listen.clone().map(Some),
        file_listeners.external.map(Some),
        None,
    );
    let admin_listen = host_port(merger, "listeners.admin", &admin_listen_text)?;
    let listen = host_port(merger, "listeners.grpc", &listen_text)?;
    let external_listen = external_listen_text
        .map(|text| host_port(merger, "listeners.external", &text))
        .transpose()?;
    let advertised_address = merger.pick(
        "advertised.grpc",
        "advertised_address",
        args.advertised_address.clone(),
        file_advertised.grpc,
        listen.to_string(),
    );
    host_port(merger, "advertised.grpc", &advertised_address)?;
    let external_advertised_address = merger.pick(
        "advertised.external",
        "external_advertised_address",
        args.external_advertised_address.clone().map(Some),
        file_advertised.external.map(Some),
        external_listen.as_ref().map(HostPort::to_string),
    );
    if let Some(address) = &external_advertised_address {
        host_port(merger, "advertised.external", address)?;
        if external_listen.is_none() {
            return Err(ConfigError::Invalid {
                key: "advertised.external",
                source_name: merger.source_name("advertised.external"),
                reason: "needs an external listener (listeners.external, --external-listen)".into(),
            });
        }
    }
    Ok(ListenerSettings {
        listen,
        admin_listen,
        advertised_address,
        external_listen,
        external_advertised_address,
    })
}

fn host_port(merger: &Merger<'_>, key: &'static str, text: &str) -> Result<HostPort, ConfigError> {
    text.parse().map_err(|reason| ConfigError::Invalid {
        key,
        source_name: merger.source_name(key),
        reason,
    })
}
