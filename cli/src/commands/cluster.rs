//! `strata cluster info` (docs/CLI.md, "Commands"): cluster id, controller id and topic count as a
//! `CLUSTER` block, then the `BROKERS` table (`ID ADDRESS RACK`, the controller marked with
//! `*` after its id as rpk does). `--format json` prints one document.

use serde::Serialize;
use strata_client::ClusterInfo;

use super::{client_error, Context};
use crate::args::ClusterCommand;
use crate::exit::{CliError, ExitStatus};
use crate::output::OutputFormat;
use crate::table::{section, Table};

#[derive(Serialize)]
struct JsonCluster<'a> {
    cluster_id: &'a str,
    controller_id: Option<i32>,
    topic_count: usize,
    brokers: Vec<JsonBroker<'a>>,
}

#[derive(Serialize)]
struct JsonBroker<'a> {
    node_id: i32,
    address: &'a str,
    rack: Option<&'a str>,
}

pub async fn run(context: &mut Context, command: ClusterCommand) -> Result<ExitStatus, CliError> {
    match command {
        ClusterCommand::Info => info(context).await,
    }
}

async fn info(context: &mut Context) -> Result<ExitStatus, CliError> {
    let info = context
        .client
        .admin()
        .cluster_info()
        .await
        .map_err(|error| client_error(error).context("reading cluster metadata"))?;
    match context.format() {
        OutputFormat::Json => context.print_json(&to_json(&info))?,
        OutputFormat::Text => context.print(&render_text(&info))?,
    }
    Ok(ExitStatus::Success)
}

fn controller(info: &ClusterInfo) -> Option<i32> {
    (info.controller_id >= 0).then_some(info.controller_id)
}

fn render_text(info: &ClusterInfo) -> String {
    let mut cluster = Table::key_value();
    cluster
        .row(["CLUSTER-ID".to_owned(), info.cluster_id.clone()])
        .row([
            "CONTROLLER-ID".to_owned(),
            crate::table::cell(controller(info)),
        ])
        .row(["TOPICS".to_owned(), info.topic_count.to_string()]);
    let mut brokers = Table::new(["ID", "ADDRESS", "RACK"]);
    for broker in &info.brokers {
        let marker = if Some(broker.node_id) == controller(info) {
            "*"
        } else {
            ""
        };
        brokers.row([
            format!("{}{marker}", broker.node_id),
            broker.address.clone(),
            broker.rack.clone(),
        ]);
    }
    format!(
        "{}{cluster}\n{}{brokers}",
        section("CLUSTER"),
        section("BROKERS")
    )
}

fn to_json(info: &ClusterInfo) -> JsonCluster<'_> {
    JsonCluster {
        cluster_id: &info.cluster_id,
        controller_id: controller(info),
        topic_count: info.topic_count,
        brokers: info
            .brokers
            .iter()
            .map(|broker| JsonBroker {
                node_id: broker.node_id,
                address: &broker.address,
                rack: (!broker.rack.is_empty()).then_some(broker.rack.as_str()),
            })
            .collect(),
    }
}
