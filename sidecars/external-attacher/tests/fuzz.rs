//! Property tests of the attacher's CSI responses with the in-process mock driver: ListVolumes
//! pages with entries lacking a volume or a status, repeated IDs, any node lists, failing pages
//! and tokens that never end give the model's published nodes or a clean error (the endless
//! listing stops at its deadline); ControllerPublishVolume's publish context comes back as the
//! driver sent it. Never a panic.

use std::collections::HashMap;
use std::time::Duration;

use csi_connection::{ConnectOptions, Connection};
use csi_proto::csi::v1 as csi;
use csi_test_support::MockCsiDriver;
use csi_test_support::fuzz::config;
use external_attacher::attacher::{Attacher, CsiAttacher};
use external_attacher::lister::{CsiVolumeLister, PublishedNodes, VolumeLister};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use tonic::{Code, Status};

fn entry() -> impl Strategy<Value = csi::list_volumes_response::Entry> {
    (
        proptest::option::of(prop_oneof!["v[0-3]", any::<String>()]),
        proptest::option::of(proptest::collection::vec(
            prop_oneof!["node-[0-2]", any::<String>()],
            0..3,
        )),
    )
        .prop_map(|(id, nodes)| csi::list_volumes_response::Entry {
            volume: id.map(|volume_id| csi::Volume {
                volume_id,
                ..Default::default()
            }),
            status: nodes.map(
                |published_node_ids| csi::list_volumes_response::VolumeStatus {
                    published_node_ids,
                    volume_condition: None,
                },
            ),
        })
}

#[derive(Clone, Debug)]
struct Pages {
    pages: Vec<Vec<csi::list_volumes_response::Entry>>,
    failure: Option<(usize, i32, String)>,
    endless: bool,
}

fn pages() -> impl Strategy<Value = Pages> {
    (
        proptest::collection::vec(proptest::collection::vec(entry(), 0..4), 1..4),
        proptest::option::of((0usize..4, 1i32..17, any::<String>())),
        proptest::bool::weighted(0.1),
    )
        .prop_map(|(pages, failure, endless)| Pages {
            pages,
            failure,
            endless,
        })
}

fn model(pages: &Pages) -> PublishedNodes {
    let mut out = PublishedNodes::new();
    for entry in pages.pages.iter().flatten() {
        if let (Some(volume), Some(status)) = (&entry.volume, &entry.status) {
            out.insert(volume.volume_id.clone(), status.published_node_ids.clone());
        }
    }
    out
}

#[test]
fn fuzz_list_volumes_and_publish() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (mock, connection) = runtime.block_on(async {
        let mock = MockCsiDriver::start().await.expect("the mock driver");
        let connection = Connection::connect(&mock.endpoint(), ConnectOptions::default())
            .await
            .expect("connected");
        (mock, connection)
    });
    let lister = CsiVolumeLister::new(connection.clone(), 2);
    let attacher = CsiAttacher::new(connection);
    let publish = prop_oneof![
        3 => proptest::collection::hash_map(any::<String>(), any::<String>(), 0..4).prop_map(Ok),
        1 => (1i32..17, any::<String>()).prop_map(|(code, message)| Err(Status::new(Code::from(code), message))),
    ];
    TestRunner::new(config(32))
        .run(&(pages(), publish), |(pages, publish)| {
            let answer = pages.clone();
            mock.handle("ListVolumes", move |req: csi::ListVolumesRequest| {
                let index = match req.starting_token.as_str() {
                    "" => 0,
                    t => t[1..]
                        .parse::<usize>()
                        .map_err(|_| Status::aborted("bad token"))?,
                };
                if let Some((at, code, message)) = &answer.failure
                    && *at == index
                {
                    return Err(Status::new(Code::from(*code), message.clone()));
                }
                let next = if index + 1 < answer.pages.len() {
                    format!("t{}", index + 1)
                } else if answer.endless {
                    "t0".to_string()
                } else {
                    String::new()
                };
                Ok(csi::ListVolumesResponse {
                    entries: answer.pages.get(index).cloned().unwrap_or_default(),
                    next_token: next,
                })
            });
            let timeout = Duration::from_millis(if pages.endless { 200 } else { 10_000 });
            let fails = pages
                .failure
                .as_ref()
                .is_some_and(|(at, _, _)| *at < pages.pages.len());
            match runtime.block_on(lister.list_volumes(timeout)) {
                Ok(published) => {
                    prop_assert!(!fails && !pages.endless);
                    prop_assert_eq!(published, model(&pages));
                }
                Err(err) => {
                    prop_assert!(fails || pages.endless, "{err}");
                    prop_assert!(err.to_string().starts_with("failed to list volumes: "));
                }
            }

            let answer = publish.clone();
            mock.handle(
                "ControllerPublishVolume",
                move |_: csi::ControllerPublishVolumeRequest| {
                    answer
                        .clone()
                        .map(|publish_context| csi::ControllerPublishVolumeResponse {
                            publish_context,
                        })
                },
            );
            let request = csi::ControllerPublishVolumeRequest {
                volume_id: "v0".into(),
                node_id: "node-0".into(),
                ..Default::default()
            };
            match (
                &publish,
                runtime.block_on(attacher.attach(request, Duration::from_secs(10))),
            ) {
                (Ok(want), Ok(got)) => {
                    let got: HashMap<String, String> = got;
                    prop_assert_eq!(&got, want);
                }
                (Err(status), Err(err)) => prop_assert!(err.to_string().contains(status.message())),
                (want, got) => prop_assert!(false, "{want:?} gave {got:?}"),
            }
            Ok(())
        })
        .unwrap();
}
