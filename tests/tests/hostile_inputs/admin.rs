//! #24, #33: topic administration with bad names and bad configs.

use strata_proto::api::v1::{AlterConfigsRequest, DeleteTopicsRequest, ErrorCode};

use crate::common::{code, create_topic, topic_spec};
use crate::fixture::{fixture, TOPIC};

#[tokio::test(flavor = "multi_thread")]
async fn hostile_24_bad_topic_names_are_invalid_topic_and_create_no_directory() {
    let mut fixture = fixture(&[]).await;
    create_topic(&mut fixture.client, "a_b", 1, &[]).await;
    let long_name = "a".repeat(250);
    let names = [
        "",
        ".",
        "..",
        long_name.as_str(),
        "../x",
        "a/b",
        "a\0b",
        "tëst",
        "t\u{043e}pic", // a Cyrillic о that looks like a Latin o
        "__x",
        "__cluster_metadata",
        "a.b", // next to a_b
    ];
    for name in names {
        fixture
            .assert_create_refused(topic_spec(name, 1, &[]), ErrorCode::InvalidTopic)
            .await;
    }
    // Nor may the metadata log be deleted as if it were a topic.
    let before = fixture.state().await;
    let request = DeleteTopicsRequest {
        names: vec!["__cluster_metadata".to_owned()],
    };
    let response = fixture.client.delete_topics(request).await.unwrap();
    let result = &response.into_inner().results[0];
    assert_ne!(code(&result.error), ErrorCode::None, "{result:?}");
    fixture
        .assert_unchanged(&before, "deleting __cluster_metadata")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_33_bad_topic_configs_are_invalid_config() {
    let mut fixture = fixture(&[]).await;
    let bad: [(&str, &str); 8] = [
        ("retention_ms", "-5"),
        ("retention_ms", "abc"),
        ("retention_ms", ""),
        ("retention_ms", "99999999999999999999999"),
        ("segment_bytes", "1"),
        ("flush", "sometimes"),
        ("cleanup_policy", "shred"),
        ("no_such_key", "1"),
    ];
    for (key, value) in bad {
        fixture
            .assert_create_refused(
                topic_spec("configured", 1, &[(key, value)]),
                ErrorCode::InvalidConfig,
            )
            .await;

        let before = fixture.state().await;
        let request = AlterConfigsRequest {
            topic: TOPIC.to_owned(),
            set: [(key.to_owned(), value.to_owned())].into(),
            delete: Vec::new(),
            validate_only: false,
        };
        let response = fixture.client.alter_configs(request).await.unwrap();
        assert_eq!(
            code(&response.into_inner().error),
            ErrorCode::InvalidConfig,
            "AlterConfigs {key}={value}"
        );
        fixture
            .assert_unchanged(&before, &format!("AlterConfigs {key}={value}"))
            .await;
    }
}
