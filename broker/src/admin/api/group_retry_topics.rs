//! The `retry_topics` of `GET /v1/groups/{group}`: the group's retry and dead-letter
//! topics (`docs/RETRY.md`), found in the metadata image by their `strata.retry.group`
//! label, with the records each holds (high watermark minus log start offset, asked of
//! the partitions' leaders). The same list as `strata group describe`.

use std::sync::Arc;

use strata_proto::views::GroupRetryTopicView;

use crate::controller::topic_labels::{LABEL_GROUP, LABEL_KIND, LABEL_LEVEL, LABEL_SOURCE};
use crate::controller::TopicImage;
use crate::node::{GroupCoordinator, Node};

/// `group_id`'s retry and dead-letter topics: by source topic, then retry levels in
/// order, then the dead-letter topic.
pub async fn retry_topics_of(
    node: &Node,
    groups: &Arc<GroupCoordinator>,
    group_id: &str,
) -> Vec<GroupRetryTopicView> {
    let image = node.image();
    let owned: Vec<&TopicImage> = image
        .topics
        .values()
        .filter(|topic| label(topic, LABEL_GROUP) == Some(group_id))
        .collect();
    let keys: Vec<(String, i32)> = owned
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .keys()
                .map(|partition| (topic.name.clone(), *partition))
        })
        .collect();
    let ends = groups.partition_ends(&keys).await;
    let mut views: Vec<GroupRetryTopicView> = owned
        .into_iter()
        .filter_map(|topic| {
            let kind = label(topic, LABEL_KIND)?;
            let level = match kind {
                "retry" => Some(label(topic, LABEL_LEVEL)?.parse().ok()?),
                "dlt" => None,
                _ => return None,
            };
            let records = topic
                .partitions
                .keys()
                .filter_map(|partition| {
                    ends.get(&(topic.name.clone(), *partition))
                        .copied()
                        .flatten()
                })
                .map(|ends| (ends.high_watermark - ends.log_start_offset).max(0))
                .sum();
            Some(GroupRetryTopicView {
                topic: topic.name.clone(),
                kind: kind.to_owned(),
                level,
                source: label(topic, LABEL_SOURCE)?.to_owned(),
                partitions: topic.partitions.len(),
                records,
            })
        })
        .collect();
    views.sort_by(|a, b| {
        let order = |view: &GroupRetryTopicView| (view.level.is_none(), view.level);
        (&a.source, order(a)).cmp(&(&b.source, order(b)))
    });
    views
}

fn label<'a>(topic: &'a TopicImage, key: &str) -> Option<&'a str> {
    topic.configs.get(key).map(String::as_str)
}
