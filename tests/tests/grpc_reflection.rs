//! gRPC server reflection on the gRPC port of a real `strata-broker`: a reflection client
//! (v1, and the older v1alpha that some tools still ask) lists the Strata services and
//! gRPC health, and is given the descriptor of a Strata service by its name, so grpcurl
//! works without the `.proto` files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{bounded, start_broker};
use strata_tests::broker_process::BrokerProcess;
use tonic::transport::Channel;
use tonic_reflection::pb::{v1, v1alpha};

/// The services a reflection client must be told of.
const SERVICES: [&str; 6] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "strata.v1.ClientApi",
    "strata.v1.Controller",
    "strata.v1.GroupApi",
    "strata.v1.Replication",
];

async fn channel(broker: &BrokerProcess) -> Channel {
    Channel::from_shared(broker.url())
        .unwrap()
        .connect()
        .await
        .unwrap()
}

/// One request on a v1 reflection stream, and its answer.
async fn ask_v1(
    channel: &Channel,
    request: v1::server_reflection_request::MessageRequest,
) -> v1::server_reflection_response::MessageResponse {
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(channel.clone());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut answers = bounded(
        "ServerReflectionInfo",
        client.server_reflection_info(tokio_stream::iter([request])),
    )
    .await
    .unwrap()
    .into_inner();
    let answer = bounded("the reflection answer", answers.message())
        .await
        .unwrap()
        .expect("one answer");
    answer.message_response.expect("a message response")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reflection_client_lists_and_describes_the_strata_services() {
    let dir = tempfile::tempdir().unwrap();
    let broker = start_broker(dir.path(), &[]);
    let channel = channel(&broker).await;

    let listed = ask_v1(
        &channel,
        v1::server_reflection_request::MessageRequest::ListServices(String::new()),
    )
    .await;
    let v1::server_reflection_response::MessageResponse::ListServicesResponse(listed) = listed
    else {
        panic!("not a list of services: {listed:?}");
    };
    let mut names: Vec<String> = listed.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(names, SERVICES);

    let described = ask_v1(
        &channel,
        v1::server_reflection_request::MessageRequest::FileContainingSymbol(
            "strata.v1.ClientApi".to_owned(),
        ),
    )
    .await;
    let v1::server_reflection_response::MessageResponse::FileDescriptorResponse(files) = described
    else {
        panic!("not a file descriptor: {described:?}");
    };
    // The encoded FileDescriptorProto of client_api.proto: its name and the service's
    // method names are in it as plain strings.
    let file = files.file_descriptor_proto.first().expect("one file");
    let text = String::from_utf8_lossy(file);
    for expected in [
        "strata/v1/client_api.proto",
        "ClientApi",
        "Produce",
        "Fetch",
    ] {
        assert!(text.contains(expected), "{expected} missing from {text:?}");
    }

    // The older v1alpha protocol answers the same list.
    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(channel);
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = bounded(
        "v1alpha ServerReflectionInfo",
        client.server_reflection_info(tokio_stream::iter([request])),
    )
    .await
    .unwrap()
    .into_inner();
    let answer = bounded("the v1alpha answer", answers.message())
        .await
        .unwrap()
        .and_then(|answer| answer.message_response);
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(listed)) =
        answer
    else {
        panic!("not a list of services: {answer:?}");
    };
    let names: Vec<String> = listed.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.iter().any(|name| name == "strata.v1.ClientApi"),
        "{names:?}"
    );
    drop(broker);
}
