//! Ports of upstream's `TestGetPluginName` (1 case) and `TestGetDriverName` (3 cases) from
//! `pkg/controller/controller_test.go` (v6.4.0), with their case names: the driver's name as
//! the provisioner reads it at start (`GetPluginInfo` through the CSI connection), against the
//! mock CSI driver.

use std::collections::HashMap;
use std::time::Duration;

use csi_connection::{ConnectOptions, Connection, rpc};
use csi_proto::csi::v1::{GetPluginInfoRequest, GetPluginInfoResponse};
use csi_test_support::MockCsiDriver;
use tonic::Status;

const TIMEOUT: Option<Duration> = Some(Duration::from_secs(10));

async fn connect(driver: &MockCsiDriver) -> Connection {
    Connection::connect(
        &driver.endpoint(),
        ConnectOptions {
            timeout: TIMEOUT,
            ..ConnectOptions::default()
        },
    )
    .await
    .unwrap()
}

fn answer(driver: &MockCsiDriver, response: Result<GetPluginInfoResponse, Status>) {
    driver.handle("GetPluginInfo", move |_: GetPluginInfoRequest| {
        response.clone()
    });
}

fn info(name: &str) -> GetPluginInfoResponse {
    GetPluginInfoResponse {
        name: name.into(),
        vendor_version: "0.2.0".into(),
        manifest: HashMap::from([("hello".to_string(), "world".to_string())]),
    }
}

/// "success": the name is asked again at each call, so a new name is seen.
#[tokio::test]
async fn test_get_plugin_name() {
    let driver = MockCsiDriver::start().await.unwrap();
    let conn = connect(&driver).await;
    answer(&driver, Ok(info("csi/example-1")));
    let old = rpc::get_driver_name(&conn, TIMEOUT).await.unwrap();
    assert_eq!(old, "csi/example-1");
    answer(&driver, Ok(info("csi/example-2")));
    let new = rpc::get_driver_name(&conn, TIMEOUT).await.unwrap();
    assert_eq!(new, "csi/example-2");
}

#[tokio::test]
async fn test_get_driver_name() {
    let driver = MockCsiDriver::start().await.unwrap();
    let conn = connect(&driver).await;
    let cases: [(&str, Result<GetPluginInfoResponse, Status>, bool); 3] = [
        ("success", Ok(info("csi/example")), false),
        ("gRPC error", Err(Status::unknown("mock error")), true),
        (
            "empty name",
            Ok(GetPluginInfoResponse {
                name: String::new(),
                ..Default::default()
            }),
            true,
        ),
    ];
    for (name, response, expect_error) in cases {
        answer(&driver, response);
        match rpc::get_driver_name(&conn, TIMEOUT).await {
            Ok(got) => {
                assert!(!expect_error, "{name}: expected an error, got {got:?}");
                assert_eq!(got, "csi/example", "{name}");
            }
            Err(err) => assert!(expect_error, "{name}: got error: {err}"),
        }
    }
}
