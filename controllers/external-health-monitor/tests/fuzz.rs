//! Property tests of the health monitor's CSI calls with the in-process mock driver answering
//! arbitrary ListVolumes pages (entries without volume or status, repeated IDs, any condition
//! messages, tokens that never end), ControllerGetVolume and NodeGetVolumeStats responses, and
//! capability lists: the conditions read are the model's (the last report of each volume across
//! all pages; no condition reads as normal), a paging loop ends at the deadline with an error,
//! and nothing panics. Likewise `ControllerListVolumeHealth` (CSI 1.13): any statuses, reasons
//! and messages read as `result_of` each volume's last report, a failed page fails the sweep, a
//! token given twice ends it with an error.

use std::collections::HashMap;
use std::time::Duration;

use csi_connection::{ConnectOptions, Connection};
use csi_proto::csi::v1 as csi;
use csi_test_support::MockCsiDriver;
use csi_test_support::fuzz::config;
use external_health_monitor::csi::{CsiHandler, VolumeConditionResult};
use external_health_monitor::volume_health::{ListHealthError, result_of};
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use tonic::{Code, Status};

fn condition() -> impl Strategy<Value = Option<csi::VolumeCondition>> {
    proptest::option::of(
        (any::<bool>(), any::<String>())
            .prop_map(|(abnormal, message)| csi::VolumeCondition { abnormal, message }),
    )
}

fn entry() -> impl Strategy<Value = csi::list_volumes_response::Entry> {
    (
        proptest::option::of(prop_oneof!["v[0-3]", any::<String>()]),
        proptest::option::of(condition()),
    )
        .prop_map(|(id, status)| csi::list_volumes_response::Entry {
            volume: id.map(|volume_id| csi::Volume {
                volume_id,
                ..Default::default()
            }),
            status: status.map(
                |volume_condition| csi::list_volumes_response::VolumeStatus {
                    published_node_ids: vec![],
                    volume_condition,
                },
            ),
        })
}

/// Pages in order; page `i` is asked for with token `""` (first) or `t<i>`.
#[derive(Clone, Debug)]
struct Pages {
    pages: Vec<Vec<csi::list_volumes_response::Entry>>,
    /// A page that fails, by index, with this status.
    failure: Option<(usize, i32, String)>,
    /// The last page points back to the first instead of ending.
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

fn model(pages: &Pages) -> HashMap<String, VolumeConditionResult> {
    let mut out = HashMap::new();
    for page in &pages.pages {
        for entry in page {
            let id = entry
                .volume
                .clone()
                .map(|v| v.volume_id)
                .unwrap_or_default();
            let condition = entry.status.clone().and_then(|s| s.volume_condition);
            out.insert(id, VolumeConditionResult::from(condition));
        }
    }
    out
}

#[test]
fn fuzz_volume_conditions() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (mock, connection) = runtime.block_on(async {
        let mock = MockCsiDriver::start().await.expect("the mock driver");
        let connection = Connection::connect(&mock.endpoint(), ConnectOptions::default())
            .await
            .expect("connected");
        (mock, connection)
    });
    let handler = CsiHandler::new(connection);
    let get = prop_oneof![
        3 => proptest::option::of(condition()).prop_map(|c| Ok(c.map(|volume_condition| {
            csi::controller_get_volume_response::VolumeStatus {
                published_node_ids: vec![],
                volume_condition,
            }
        }))),
        1 => (1i32..17, any::<String>()).prop_map(|(code, message)| Err(Status::new(Code::from(code), message))),
    ];
    let node = condition();
    TestRunner::new(config(32))
        .run(&(pages(), get, node), |(pages, get, node)| {
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
            let got = runtime.block_on(handler.list_volume_conditions(timeout));
            let fails = pages
                .failure
                .as_ref()
                .is_some_and(|(at, _, _)| *at < pages.pages.len());
            match got {
                Ok(conditions) => {
                    prop_assert!(!fails && !pages.endless);
                    prop_assert_eq!(conditions, model(&pages));
                }
                Err(err) => {
                    prop_assert!(fails || pages.endless, "{err}");
                    prop_assert!(err.to_string().starts_with("failed to list volumes: "));
                }
            }

            let answer = get.clone();
            mock.handle(
                "ControllerGetVolume",
                move |_: csi::ControllerGetVolumeRequest| {
                    answer
                        .clone()
                        .map(|status| csi::ControllerGetVolumeResponse {
                            volume: None,
                            status,
                        })
                },
            );
            let got = runtime.block_on(handler.get_volume_condition("v0", Duration::from_secs(10)));
            match (&get, got) {
                (Ok(status), Ok(result)) => {
                    let want = VolumeConditionResult::from(
                        status.clone().and_then(|s| s.volume_condition),
                    );
                    prop_assert_eq!(result, want);
                }
                (Err(status), Err(err)) => prop_assert!(err.to_string().contains(status.message())),
                (want, got) => prop_assert!(false, "{want:?} gave {got:?}"),
            }

            let answer = node.clone();
            mock.handle(
                "NodeGetVolumeStats",
                move |_: csi::NodeGetVolumeStatsRequest| {
                    Ok(csi::NodeGetVolumeStatsResponse {
                        usage: vec![],
                        volume_condition: answer.clone(),
                    })
                },
            );
            let got = runtime
                .block_on(handler.node_get_volume_condition(
                    "v0",
                    "/p",
                    "/s",
                    Duration::from_secs(10),
                ))
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(got, VolumeConditionResult::from(node));
            Ok(())
        })
        .unwrap();
}

fn volume_health() -> impl Strategy<Value = csi::VolumeHealth> {
    (
        prop_oneof!["v[0-3]", any::<String>()],
        proptest::collection::vec(
            (
                prop_oneof![0i32..5, any::<i32>()],
                prop_oneof!["[A-Z][a-zA-Z]{0,8}", any::<String>()],
                any::<String>(),
            )
                .prop_map(|(status, reason, message)| {
                    csi::volume_health::VolumeHealthEntry {
                        status,
                        reason,
                        message,
                    }
                }),
            0..4,
        ),
    )
        .prop_map(|(volume_id, health_statuses)| csi::VolumeHealth {
            volume_id,
            health_statuses,
        })
}

#[test]
fn fuzz_list_volume_health() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (mock, connection) = runtime.block_on(async {
        let mock = MockCsiDriver::start().await.expect("the mock driver");
        let connection = Connection::connect(&mock.endpoint(), ConnectOptions::default())
            .await
            .expect("connected");
        (mock, connection)
    });
    let handler = CsiHandler::new(connection);
    let pages = (
        proptest::collection::vec(proptest::collection::vec(volume_health(), 0..4), 1..4),
        proptest::option::of((0usize..4, 1i32..17, any::<String>())),
        proptest::bool::weighted(0.1),
    );
    TestRunner::new(config(32))
        .run(&pages, |(pages, failure, endless)| {
            let answer = (pages.clone(), failure.clone());
            mock.handle(
                "ControllerListVolumeHealth",
                move |req: csi::ControllerListVolumeHealthRequest| {
                    let (pages, failure) = &answer;
                    let index = match req.starting_token.as_str() {
                        "" => 0,
                        t => t[1..]
                            .parse::<usize>()
                            .map_err(|_| Status::aborted("bad token"))?,
                    };
                    if let Some((at, code, message)) = failure
                        && *at == index
                    {
                        return Err(Status::new(Code::from(*code), message.clone()));
                    }
                    let next_token = if index + 1 < pages.len() {
                        format!("t{}", index + 1)
                    } else if endless {
                        "t0".to_string()
                    } else {
                        String::new()
                    };
                    Ok(csi::ControllerListVolumeHealthResponse {
                        entries: pages.get(index).cloned().unwrap_or_default(),
                        next_token,
                    })
                },
            );
            let got = runtime.block_on(handler.list_volume_health(Duration::from_secs(10)));
            let fails = failure.as_ref().is_some_and(|(at, _, _)| *at < pages.len());
            match got {
                Ok(results) => {
                    prop_assert!(!fails && !endless);
                    let mut want = HashMap::new();
                    for health in pages.iter().flatten() {
                        want.insert(health.volume_id.clone(), result_of(Some(health)));
                    }
                    prop_assert_eq!(results, want);
                }
                Err(ListHealthError::ListVolumeHealth(_)) => prop_assert!(fails),
                Err(ListHealthError::RepeatedToken(token)) => {
                    prop_assert!(endless && !fails);
                    prop_assert!(token.starts_with('t'));
                }
            }
            Ok(())
        })
        .unwrap();
}
