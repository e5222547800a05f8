use std::time::Duration;

use csi_proto::csi::v1::controller_client::ControllerClient;
use csi_proto::csi::v1::{CreateVolumeRequest, CreateVolumeResponse, Volume};
use csi_test_support::{MockCsiDriver, unix_channel};
use tonic::Code;

use super::{Fault, FaultPlan, FaultProxy};

/// A mock driver whose CreateVolume answers with the volume ID `id-<name>`.
async fn driver() -> MockCsiDriver {
    let mock = MockCsiDriver::start().await.unwrap();
    mock.handle("CreateVolume", |request: CreateVolumeRequest| {
        Ok(CreateVolumeResponse {
            volume: Some(Volume {
                volume_id: format!("id-{}", request.name),
                ..Volume::default()
            }),
        })
    });
    mock
}

async fn create(
    proxy: &FaultProxy,
    name: &str,
    timeout: Option<Duration>,
) -> Result<String, tonic::Status> {
    let channel = unix_channel(proxy.socket()).await.unwrap();
    let mut request = tonic::Request::new(CreateVolumeRequest {
        name: name.to_string(),
        ..CreateVolumeRequest::default()
    });
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    let response = ControllerClient::new(channel)
        .create_volume(request)
        .await?;
    Ok(response.into_inner().volume.unwrap_or_default().volume_id)
}

#[test]
fn the_same_seed_draws_the_same_faults() {
    let plan = FaultPlan::new(7).fail("CreateVolume", 30, Code::Internal);
    let draws = |plan: &FaultPlan| -> Vec<bool> {
        (0..1000)
            .map(|n| plan.decide("CreateVolume", n).is_some())
            .collect()
    };
    let first = draws(&plan);
    assert_eq!(first, draws(&plan.clone()));
    let hits = first.iter().filter(|hit| **hit).count();
    assert!((250..=350).contains(&hits), "30 % of 1000: {hits}");
    let other = FaultPlan::new(8).fail("CreateVolume", 30, Code::Internal);
    assert_ne!(first, draws(&other), "another seed, other draws");
}

#[test]
fn rules_apply_to_their_method_and_none_and_all() {
    let plan = FaultPlan::new(1)
        .fail("CreateVolume", 100, Code::Unavailable)
        .hang("*", 100, Duration::from_secs(1));
    assert_eq!(
        plan.decide("CreateVolume", 0),
        Some(Fault::Fail(Code::Unavailable)),
        "the first rule that hits"
    );
    assert_eq!(
        plan.decide("DeleteVolume", 0),
        Some(Fault::Hang(Duration::from_secs(1))),
        "`*` matches every method"
    );
    let none = FaultPlan::new(1).fail("CreateVolume", 0, Code::Internal);
    assert!((0..1000).all(|n| none.decide("CreateVolume", n).is_none()));
    assert!((0..1000).all(|n| FaultPlan::new(1).decide("CreateVolume", n).is_none()));
}

#[tokio::test]
async fn passes_calls_through_unchanged() {
    let mock = driver().await;
    let proxy = FaultProxy::start(mock.socket_path(), FaultPlan::new(1))
        .await
        .unwrap();
    assert_eq!(create(&proxy, "a", None).await.unwrap(), "id-a");
    assert_eq!(mock.calls_to("CreateVolume").len(), 1);
    let calls = proxy.calls_to("CreateVolume");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "/csi.v1.Controller/CreateVolume");
    assert_eq!(calls[0].fault, None);
    let request: CreateVolumeRequest = calls[0].decode().unwrap();
    assert_eq!(request.name, "a");
    // A status from the driver reaches the caller as it was.
    mock.handle(
        "CreateVolume",
        |_: CreateVolumeRequest| -> Result<CreateVolumeResponse, tonic::Status> {
            Err(tonic::Status::resource_exhausted("full"))
        },
    );
    let status = create(&proxy, "b", None).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(status.message(), "full");
}

#[tokio::test]
async fn fails_the_planned_calls_with_the_code_and_never_calls_the_driver() {
    let mock = driver().await;
    let plan = FaultPlan::new(42).fail("CreateVolume", 40, Code::Unavailable);
    let proxy = FaultProxy::start(mock.socket_path(), plan.clone())
        .await
        .unwrap();
    let mut failed = 0;
    for n in 0..50u64 {
        let result = create(&proxy, &format!("v{n}"), None).await;
        let expected = plan.decide("CreateVolume", n);
        match result {
            Ok(id) => {
                assert_eq!(expected, None, "call {n}");
                assert_eq!(id, format!("id-v{n}"));
            }
            Err(status) => {
                assert_eq!(expected, Some(Fault::Fail(Code::Unavailable)), "call {n}");
                assert_eq!(status.code(), Code::Unavailable);
                assert_eq!(status.message(), "injected by the fault proxy");
                failed += 1;
            }
        }
    }
    assert!(failed > 0 && failed < 50, "{failed} of 50 failed");
    assert_eq!(proxy.faults_of("CreateVolume"), failed);
    assert_eq!(mock.calls_to("CreateVolume").len(), 50 - failed);
}

#[tokio::test]
async fn a_held_call_reaches_the_driver_after_the_caller_gave_up() {
    let mock = driver().await;
    let plan = FaultPlan::new(1).hang("CreateVolume", 100, Duration::from_millis(400));
    let proxy = FaultProxy::start(mock.socket_path(), plan).await.unwrap();
    let status = create(&proxy, "slow", Some(Duration::from_millis(50)))
        .await
        .unwrap_err();
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    assert!(mock.calls_to("CreateVolume").is_empty(), "held back");
    mock.wait_for_calls("CreateVolume", 1, Duration::from_secs(5))
        .await
        .unwrap();
    // A caller that waits long enough gets the driver's answer.
    assert_eq!(create(&proxy, "patient", None).await.unwrap(), "id-patient");
}

#[tokio::test]
async fn connects_again_after_the_driver_restarted() {
    let mock = driver().await;
    let proxy = FaultProxy::start(mock.socket_path(), FaultPlan::new(1))
        .await
        .unwrap();
    assert_eq!(create(&proxy, "a", None).await.unwrap(), "id-a");
    mock.stop().await.unwrap();
    let status = create(&proxy, "b", None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    mock.start_again().await.unwrap();
    assert_eq!(create(&proxy, "c", None).await.unwrap(), "id-c");
}
