use std::time::Duration;

use csi_test_support::{FakeKubelet, wait_for_path};

use super::*;

const DRIVER: &str = "hostpath.csi.k8s.io";
const ENDPOINT: &str = "/var/lib/kubelet/plugins/csi-hostpath/csi.sock";
const WAIT: Duration = Duration::from_secs(10);

fn registrar(dir: &Path, exit_on_failure: bool) -> Registrar {
    Registrar {
        driver: DRIVER.to_string(),
        endpoint: ENDPOINT.to_string(),
        socket: socket_path(dir.to_str().unwrap(), DRIVER),
        timeout: Duration::from_secs(1),
        exit_on_failure,
        state: Arc::new(Mutex::new(RegistrationState::Waiting)),
    }
}

#[test]
fn the_socket_is_named_after_the_driver() {
    assert_eq!(
        socket_path("/registration", DRIVER),
        PathBuf::from("/registration/hostpath.csi.k8s.io-reg.sock")
    );
}

#[tokio::test]
async fn the_kubelet_gets_upstreams_plugin_info() {
    let dir = tempfile::tempdir().unwrap();
    let r = registrar(dir.path(), true);
    let listener = socket::listen(&r.socket).unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(r.clone().run(listener, shutdown.clone()));

    let info = FakeKubelet::register(dir.path(), DRIVER, WAIT)
        .await
        .unwrap();
    assert_eq!(info.r#type, "CSIPlugin");
    assert_eq!(info.name, DRIVER);
    assert_eq!(info.endpoint, ENDPOINT);
    assert_eq!(info.supported_versions, vec!["1.0.0".to_string()]);
    assert_eq!(r.state(), RegistrationState::Registered);
    assert_eq!(r.health().await, CheckResult::Ok);

    shutdown.cancel();
    task.await.unwrap().unwrap();
    assert!(!r.socket.exists(), "the socket is removed at shutdown");
    assert!(matches!(
        r.health().await,
        CheckResult::Failed { status, .. } if status.as_u16() == 404
    ));
}

#[tokio::test]
async fn a_rejected_registration_ends_the_standalone_registrar() {
    let dir = tempfile::tempdir().unwrap();
    let r = registrar(dir.path(), true);
    let listener = socket::listen(&r.socket).unwrap();
    let task = tokio::spawn(r.clone().run(listener, CancellationToken::new()));

    let kubelet = FakeKubelet::connect(&r.socket).await.unwrap();
    kubelet.get_info().await.unwrap();
    kubelet
        .notify_registration_status(false, "driver name clash")
        .await
        .unwrap();
    let err = tokio::time::timeout(WAIT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(err.to_string().contains("driver name clash"), "{err}");
}

#[tokio::test]
async fn in_csi_sidecars_a_rejected_registration_is_offered_again() {
    let dir = tempfile::tempdir().unwrap();
    let r = registrar(dir.path(), false);
    let listener = socket::listen(&r.socket).unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(r.clone().run(listener, shutdown.clone()));

    let kubelet = FakeKubelet::connect(&r.socket).await.unwrap();
    kubelet
        .notify_registration_status(false, "plugin watcher said no")
        .await
        .unwrap();
    drop(kubelet);
    // Unhealthy from now until the kubelet accepts the driver.
    let result = r.health().await;
    assert!(!result.is_ok(), "{result:?}");

    // The socket goes away and comes back; the kubelet retries and succeeds.
    tokio::time::timeout(WAIT, async {
        while r.socket.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the old socket is removed");
    wait_for_path(&r.socket, WAIT).await.unwrap();
    let info = FakeKubelet::register(dir.path(), DRIVER, WAIT)
        .await
        .unwrap();
    assert_eq!(info.name, DRIVER);
    assert_eq!(r.health().await, CheckResult::Ok);
    assert!(!task.is_finished(), "the registrar keeps running");

    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn health_fails_when_someone_else_answers_on_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let mut other = registrar(dir.path(), true);
    other.driver = "other.csi.k8s.io".to_string();
    let listener = socket::listen(&other.socket).unwrap();
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(other.clone().run(listener, shutdown.clone()));

    let ours = registrar(dir.path(), true);
    let result = ours.health().await;
    assert_eq!(
        result,
        CheckResult::failed("invalid driver name other.csi.k8s.io")
    );
    shutdown.cancel();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn health_fails_when_the_socket_does_not_answer() {
    let dir = tempfile::tempdir().unwrap();
    let r = registrar(dir.path(), true);
    // A socket that nobody serves: bound, then the listener is dropped.
    drop(std::os::unix::net::UnixListener::bind(&r.socket).unwrap());
    let result = r.health().await;
    match result {
        CheckResult::Failed { status, reason } => {
            assert_eq!(status.as_u16(), 500);
            assert!(
                reason.contains("error connecting to node-registrar socket"),
                "{reason}"
            );
        }
        other => panic!("expected a failure, got {other:?}"),
    }
}
