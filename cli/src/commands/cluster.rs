//! `strata cluster info` (docs/CLI.md, "Commands"): a `CLUSTER` block (cluster id, the
//! controller leader and its term, topic count, and which broker answered with its applied
//! metadata), the `BROKERS` table (`ID ADDRESS RACK STATE INCARNATION`, the controller
//! leader marked with `*` after its id as rpk does, STATE `live` or `fenced`) and the
//! `QUORUM` table of controller voters (`ID ADDRESS STATUS MATCHED-INDEX LAG`, STATUS
//! `leader` or `follower` as in `kafka-metadata-quorum describe --replication`).
//! `--format json` prints the same as one document.
//!
//! The view is built once from the library's values and rendered both ways, so the text
//! and JSON forms cannot disagree; the unit tests build views directly.

use serde::Serialize;
use strata_client::ClusterDescription;

use super::{client_error, Context};
use crate::args::ClusterCommand;
use crate::exit::{CliError, ExitStatus};
use crate::output::OutputFormat;
use crate::table::{cell, section, Table};

/// Everything `cluster info` prints. Field names are the JSON output's; `controller_id`,
/// `topic_count` and the brokers' `node_id`, `address`, `rack` predate issue 19 and stay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct ClusterView {
    pub(crate) cluster_id: String,
    /// The controller leader; `None` while the quorum elects one.
    pub(crate) controller_id: Option<i32>,
    pub(crate) controller_term: u64,
    pub(crate) topic_count: usize,
    pub(crate) answered_by: i32,
    pub(crate) metadata_version: i64,
    pub(crate) applied_index: i64,
    pub(crate) last_log_index: i64,
    pub(crate) brokers: Vec<BrokerView>,
    pub(crate) voters: Vec<VoterView>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct BrokerView {
    pub(crate) node_id: i32,
    pub(crate) address: String,
    pub(crate) rack: Option<String>,
    /// `live` or `fenced`.
    pub(crate) state: &'static str,
    pub(crate) fenced: bool,
    pub(crate) incarnation: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct VoterView {
    pub(crate) node_id: i32,
    pub(crate) address: String,
    pub(crate) leader: bool,
    pub(crate) matched_index: Option<i64>,
    pub(crate) lag: Option<i64>,
}

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
    let view = ClusterView::new(&cluster, topic_count);
    match context.format() {
        OutputFormat::Json => context.print_json(&view)?,
        OutputFormat::Text => context.print(&view.render_text())?,
    }
    Ok(ExitStatus::Success)
}

impl ClusterView {
    fn new(cluster: &ClusterDescription, topic_count: usize) -> ClusterView {
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
                    state: if broker.fenced { "fenced" } else { "live" },
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
        }
    }

    pub(crate) fn render_text(&self) -> String {
        let mut cluster = Table::key_value();
        cluster
            .row(["CLUSTER-ID".to_owned(), self.cluster_id.clone()])
            .row(["CONTROLLER-ID".to_owned(), cell(self.controller_id)])
            .row([
                "CONTROLLER-TERM".to_owned(),
                self.controller_term.to_string(),
            ])
            .row(["TOPICS".to_owned(), self.topic_count.to_string()])
            .row(["ANSWERED-BY".to_owned(), self.answered_by.to_string()])
            .row([
                "METADATA-VERSION".to_owned(),
                self.metadata_version.to_string(),
            ])
            .row(["APPLIED-INDEX".to_owned(), self.applied_index.to_string()])
            .row(["LAST-LOG-INDEX".to_owned(), self.last_log_index.to_string()]);
        let mut brokers = Table::new(["ID", "ADDRESS", "RACK", "STATE", "INCARNATION"]);
        for broker in &self.brokers {
            let marker = if Some(broker.node_id) == self.controller_id {
                "*"
            } else {
                ""
            };
            brokers.row([
                format!("{}{marker}", broker.node_id),
                broker.address.clone(),
                cell(broker.rack.as_deref()),
                broker.state.to_owned(),
                broker.incarnation.to_string(),
            ]);
        }
        let mut voters = Table::new(["ID", "ADDRESS", "STATUS", "MATCHED-INDEX", "LAG"]);
        for voter in &self.voters {
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
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
