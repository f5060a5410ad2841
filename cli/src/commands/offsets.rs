//! `strata offsets TOPIC [--time T]` (docs/CLI.md, "Commands").
//!
//! Without `--time`: `PARTITION START END`, the log start offset and the high watermark
//! (the offset the next record gets; consumers can read up to it). With `--time`:
//! `PARTITION OFFSET TIMESTAMP`, the first record at or after T, `-` where no record is that
//! recent. JSON: one array document, `null` for none.

use serde::Serialize;
use strata_client::OffsetSpec;

use super::{client_error, Context};
use crate::args::OffsetsArgs;
use crate::exit::{CliError, ExitStatus};
use crate::output::OutputFormat;
use crate::table::{cell, Table};

#[derive(Serialize)]
struct Range {
    partition: i32,
    start: i64,
    end: i64,
}

#[derive(Serialize)]
struct AtTime {
    partition: i32,
    offset: Option<i64>,
    timestamp: Option<i64>,
}

pub async fn run(context: &mut Context, args: OffsetsArgs) -> Result<ExitStatus, CliError> {
    let topic = &args.topic;
    let admin = context.client.admin();
    let context_error =
        |error| client_error(error).context(format!("reading the offsets of {topic:?}"));
    let partitions = admin
        .describe_topic(topic)
        .await
        .map_err(context_error)?
        .partitions;
    let text = if let Some(time) = args.time {
        let mut found = Vec::new();
        for partition in &partitions {
            let (offset, timestamp) = admin
                .list_offsets(topic, partition.partition, OffsetSpec::Timestamp(time))
                .await
                .map_err(context_error)?;
            found.push(AtTime {
                partition: partition.partition,
                offset: (offset >= 0).then_some(offset),
                timestamp: (offset >= 0 && timestamp >= 0).then_some(timestamp),
            });
        }
        if context.format() == OutputFormat::Json {
            return context.print_json(&found).map(|()| ExitStatus::Success);
        }
        let mut table = Table::new(["PARTITION", "OFFSET", "TIMESTAMP"]);
        for row in &found {
            table.row([
                row.partition.to_string(),
                cell(row.offset),
                cell(row.timestamp),
            ]);
        }
        table.to_string()
    } else {
        let mut ranges = Vec::new();
        for partition in &partitions {
            let mut start = partition.log_start_offset;
            let mut end = partition.high_watermark;
            if start < 0 {
                start = admin
                    .list_offsets(topic, partition.partition, OffsetSpec::Earliest)
                    .await
                    .map_err(context_error)?
                    .0;
            }
            if end < 0 {
                end = admin
                    .list_offsets(topic, partition.partition, OffsetSpec::Latest)
                    .await
                    .map_err(context_error)?
                    .0;
            }
            ranges.push(Range {
                partition: partition.partition,
                start,
                end,
            });
        }
        if context.format() == OutputFormat::Json {
            return context.print_json(&ranges).map(|()| ExitStatus::Success);
        }
        let mut table = Table::new(["PARTITION", "START", "END"]);
        for row in &ranges {
            table.row([
                row.partition.to_string(),
                row.start.to_string(),
                row.end.to_string(),
            ]);
        }
        table.to_string()
    };
    context.print(&text)?;
    Ok(ExitStatus::Success)
}
