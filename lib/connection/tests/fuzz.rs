//! Property tests of the identity and capability calls every sidecar makes at start-up, with
//! the in-process mock driver answering arbitrary responses (unknown enum values, missing
//! capability types, empty names, any gRPC status with any message): the result is the model's
//! (the known capabilities, the name unless empty, `ready` defaulting to true) or a clean
//! error, never a panic.

use std::collections::HashSet;
use std::time::Duration;

use csi_connection::{ConnectOptions, Connection, Error, rpc};
use csi_proto::csi::v1 as csi;
use csi_test_support::MockCsiDriver;
use csi_test_support::fuzz::config;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use tonic::{Code, Status};

const TIMEOUT: Option<Duration> = Some(Duration::from_secs(10));

fn status() -> impl Strategy<Value = Status> {
    (0i32..20, any::<String>()).prop_map(|(code, message)| Status::new(Code::from(code), message))
}

/// A reply: a response or a status.
fn reply<T: std::fmt::Debug + Clone>(
    response: impl Strategy<Value = T>,
) -> impl Strategy<Value = Result<T, Status>> {
    prop_oneof![4 => response.prop_map(Ok), 1 => status().prop_map(Err)]
}

fn start() -> (tokio::runtime::Runtime, MockCsiDriver, Connection) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (mock, connection) = runtime.block_on(async {
        let mock = MockCsiDriver::start().await.expect("the mock driver");
        let connection = Connection::connect(&mock.endpoint(), ConnectOptions::default())
            .await
            .expect("connected");
        (mock, connection)
    });
    (runtime, mock, connection)
}

fn check_error(err: &Error) -> Result<(), TestCaseError> {
    prop_assert!(!err.to_string().is_empty());
    Ok(())
}

#[test]
fn fuzz_plugin_info() {
    let (runtime, mock, connection) = start();
    let strategy = reply(
        (
            any::<String>(),
            any::<String>(),
            proptest::collection::btree_map(any::<String>(), any::<String>(), 0..3),
        )
            .prop_map(
                |(name, vendor_version, manifest)| csi::GetPluginInfoResponse {
                    name,
                    vendor_version,
                    manifest: manifest.into_iter().collect(),
                },
            ),
    );
    TestRunner::new(config(48))
        .run(&strategy, |answer| {
            let sent = answer.clone();
            mock.handle("GetPluginInfo", move |_: csi::GetPluginInfoRequest| {
                sent.clone()
            });
            let got = runtime.block_on(rpc::get_driver_name(&connection, TIMEOUT));
            match (&answer, got) {
                (Ok(info), Ok(name)) => prop_assert_eq!(&name, &info.name),
                (Ok(info), Err(err)) => {
                    prop_assert!(info.name.is_empty(), "{err}");
                    check_error(&err)?;
                }
                (Err(_), Err(err)) => check_error(&err)?,
                (Err(status), Ok(name)) => {
                    prop_assert!(false, "{status:?} read as the name {name:?}")
                }
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzz_capabilities_and_probe() {
    let (runtime, mock, connection) = start();
    let controller = proptest::collection::vec(
        proptest::option::of(prop_oneof![0i32..20, any::<i32>()]),
        0..6,
    );
    let plugin = proptest::collection::vec(
        proptest::option::of(prop_oneof![0i32..5, any::<i32>()]),
        0..4,
    );
    let node = proptest::collection::vec(
        proptest::option::of(prop_oneof![0i32..10, any::<i32>()]),
        0..4,
    );
    let probe = reply(proptest::option::of(any::<bool>()));
    let strategy = (reply(controller), reply(plugin), reply(node), probe);
    TestRunner::new(config(48))
        .run(&strategy, |(controller, plugin, node, probe)| {
            let known = |types: &[Option<i32>], valid: &dyn Fn(i32) -> bool| -> HashSet<i32> {
                types
                    .iter()
                    .flatten()
                    .copied()
                    .filter(|t| valid(*t))
                    .collect()
            };

            let answer = controller
                .clone()
                .map(|types| csi::ControllerGetCapabilitiesResponse {
                    capabilities: types
                        .iter()
                        .map(|t| csi::ControllerServiceCapability {
                            r#type: t.map(|t| {
                                csi::controller_service_capability::Type::Rpc(
                                    csi::controller_service_capability::Rpc { r#type: t },
                                )
                            }),
                        })
                        .collect(),
                });
            mock.handle(
                "ControllerGetCapabilities",
                move |_: csi::ControllerGetCapabilitiesRequest| answer.clone(),
            );
            let got = runtime.block_on(rpc::get_controller_capabilities(&connection, TIMEOUT));
            match (&controller, got) {
                (Ok(types), Ok(set)) => {
                    let want = known(types, &|t| {
                        csi::controller_service_capability::rpc::Type::try_from(t).is_ok()
                    });
                    let got: HashSet<i32> = set.into_iter().map(|t| t as i32).collect();
                    prop_assert_eq!(got, want);
                }
                (Err(_), Err(err)) => check_error(&err)?,
                (want, got) => prop_assert!(false, "{want:?} gave {got:?}"),
            }

            let answer = plugin
                .clone()
                .map(|types| csi::GetPluginCapabilitiesResponse {
                    capabilities: types
                        .iter()
                        .map(|t| csi::PluginCapability {
                            r#type: t.map(|t| {
                                csi::plugin_capability::Type::Service(
                                    csi::plugin_capability::Service { r#type: t },
                                )
                            }),
                        })
                        .collect(),
                });
            mock.handle(
                "GetPluginCapabilities",
                move |_: csi::GetPluginCapabilitiesRequest| answer.clone(),
            );
            let got = runtime.block_on(rpc::get_plugin_capabilities(&connection, TIMEOUT));
            match (&plugin, got) {
                (Ok(types), Ok(set)) => {
                    let want = known(types, &|t| {
                        csi::plugin_capability::service::Type::try_from(t).is_ok()
                    });
                    let got: HashSet<i32> = set.into_iter().map(|t| t as i32).collect();
                    prop_assert_eq!(got, want);
                }
                (Err(_), Err(err)) => check_error(&err)?,
                (want, got) => prop_assert!(false, "{want:?} gave {got:?}"),
            }

            let answer = node.clone().map(|types| csi::NodeGetCapabilitiesResponse {
                capabilities: types
                    .iter()
                    .map(|t| csi::NodeServiceCapability {
                        r#type: t.map(|t| {
                            csi::node_service_capability::Type::Rpc(
                                csi::node_service_capability::Rpc { r#type: t },
                            )
                        }),
                    })
                    .collect(),
            });
            mock.handle(
                "NodeGetCapabilities",
                move |_: csi::NodeGetCapabilitiesRequest| answer.clone(),
            );
            let got = runtime.block_on(rpc::get_node_capabilities(&connection, TIMEOUT));
            match (&node, got) {
                (Ok(types), Ok(set)) => {
                    let want = known(types, &|t| {
                        csi::node_service_capability::rpc::Type::try_from(t).is_ok()
                    });
                    let got: HashSet<i32> = set.into_iter().map(|t| t as i32).collect();
                    prop_assert_eq!(got, want);
                }
                (Err(_), Err(err)) => check_error(&err)?,
                (want, got) => prop_assert!(false, "{want:?} gave {got:?}"),
            }

            let answer = probe.clone().map(|ready| csi::ProbeResponse { ready });
            mock.handle("Probe", move |_: csi::ProbeRequest| answer.clone());
            let got = runtime.block_on(rpc::probe(&connection, TIMEOUT));
            match (&probe, got) {
                (Ok(ready), Ok(got)) => prop_assert_eq!(got, ready.unwrap_or(true)),
                (Err(_), Err(err)) => check_error(&err)?,
                (want, got) => prop_assert!(false, "{want:?} gave {got:?}"),
            }
            Ok(())
        })
        .unwrap();
}
