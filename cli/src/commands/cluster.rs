//! `strata cluster info` (docs/CLI.md, "Commands"): a `CLUSTER` block (cluster id, the
//! controller leader and its term, topic count, and which broker answered with its applied
//! metadata), the `BROKERS` table (`ID ADDRESS RACK STATE INCARNATION`, the controller
//! leader marked with `*` after its id as rpk does, STATE `live` or `fenced`) and the
//! `QUORUM` table of controller voters (`ID ADDRESS STATUS MATCHED-INDEX LAG`, STATUS
//! `leader` or `follower` as in `kafka-metadata-quorum describe --replication`).
//! `--format json` prints the same as one document.
//!
//! The view ([`ClusterView`], shared with the broker's `GET /v1/cluster`) is built once
//! from the library's values and rendered both ways, so the text and JSON forms cannot
//! disagree; the unit tests build views directly.

use strata_client::ClusterDescription;
use strata_proto::views::{BrokerView, ClusterView, VoterView};

use super::{client_error, Context};
use crate::args::ClusterCommand;
use crate::exit::{CliError, ExitStatus};
use crate::output::OutputFormat;
use crate::table::{cell, section, Table};

pub async fn run(context: &mut Context, command: ClusterCommand) -> Result<ExitStatus, CliError> {
    match command {
        ClusterCommand::Info => info(context).await,
    }
}

async fn info(context: &mut Context) -> Result<ExitStatus, CliError> {
    let admin = context.client.admin();
    let cluster = admin
        .describe_cluster()
        .await
        .map_err(|error| client_error(error).context("describing the cluster"))?;
    let topic_count = admin
        .cluster_info()
        .await
        .map_err(|error| client_error(error).context("reading cluster metadata"))?
        .topic_count;
    let view = cluster_view(&cluster, topic_count);
    match context.format() {
        OutputFormat::Json => context.print_json(&view)?,
        OutputFormat::Text => context.print(&render_text(&view))?,
    }
    Ok(ExitStatus::Success)
}

fn cluster_view(cluster: &ClusterDescription, topic_count: usize) -> ClusterView {
    ClusterView {
        cluster_id: cluster.cluster_id.clone(),
        controller_id: cluster.controller_leader,
        controller_term: cluster.controller_term,
        topic_count,
        answered_by: cluster.answered_by,
        metadata_version: cluster.metadata_version,
        applied_index: cluster.applied_index,
        last_log_index: cluster.last_log_index,
        brokers: cluster
            .brokers
            .iter()
            .map(|broker| BrokerView {
                node_id: broker.node_id,
                address: broker.address.clone(),
                rack: broker.rack.clone(),
                state: BrokerView::state_name(broker.fenced).to_owned(),
                fenced: broker.fenced,
                incarnation: broker.incarnation,
            })
            .collect(),
        voters: cluster
            .voters
            .iter()
            .map(|voter| VoterView {
                node_id: voter.node_id,
                address: voter.address.clone(),
                leader: voter.leader,
                matched_index: voter.matched_index,
                lag: voter.lag,
            })
            .collect(),
        version: None,
    }
}

pub(crate) fn render_text(view: &ClusterView) -> String {
    let mut cluster = Table::key_value();
    cluster
        .row(["CLUSTER-ID".to_owned(), view.cluster_id.clone()])
        .row(["CONTROLLER-ID".to_owned(), cell(view.controller_id)])
        .row([
            "CONTROLLER-TERM".to_owned(),
            view.controller_term.to_string(),
        ])
        .row(["TOPICS".to_owned(), view.topic_count.to_string()])
        .row(["ANSWERED-BY".to_owned(), view.answered_by.to_string()])
        .row([
            "METADATA-VERSION".to_owned(),
            view.metadata_version.to_string(),
        ])
        .row(["APPLIED-INDEX".to_owned(), view.applied_index.to_string()])
        .row(["LAST-LOG-INDEX".to_owned(), view.last_log_index.to_string()]);
    let mut brokers = Table::new(["ID", "ADDRESS", "RACK", "STATE", "INCARNATION"]);
    for broker in &view.brokers {
        let marker = if Some(broker.node_id) == view.controller_id {
            "*"
        } else {
            ""
        };
        brokers.row([
            format!("{}{marker}", broker.node_id),
            broker.address.clone(),
            cell(broker.rack.as_deref()),
            broker.state.clone(),
            broker.incarnation.to_string(),
        ]);
    }
    let mut voters = Table::new(["ID", "ADDRESS", "STATUS", "MATCHED-INDEX", "LAG"]);
    for voter in &view.voters {
        voters.row([
            voter.node_id.to_string(),
            voter.address.clone(),
            if voter.leader { "leader" } else { "follower" }.to_owned(),
            cell(voter.matched_index),
            cell(voter.lag),
        ]);
    }
    format!(
        "{}{cluster}\n{}{brokers}\n{}{voters}",
        section("CLUSTER"),
        section("BROKERS"),
        section("QUORUM")
    )
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
