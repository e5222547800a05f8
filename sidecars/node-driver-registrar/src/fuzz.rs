//! Property tests of the registration server: any driver name (as GetPluginInfo may answer it)
//! gives a socket or a clean error, GetInfo answers with exactly the driver and endpoint it was
//! given, a sequence of NotifyRegistrationStatus calls with any reasons leaves the state the
//! kubelet last reported (and a refusal ends the standalone registrar with that reason), and
//! garbage written to the socket leaves the server answering. Never a panic.

use std::time::Duration;

use csi_test_support::FakeKubelet;
use csi_test_support::fuzz::config;
use proptest::prelude::*;
use tokio::io::AsyncWriteExt as _;

use super::*;

const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
struct Case {
    driver: String,
    endpoint: String,
    garbage: Vec<u8>,
    /// (plugin_registered, error) in the order the kubelet sends them.
    statuses: Vec<(bool, String)>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop_oneof![
            4 => "[a-z0-9][a-z0-9.-]{0,40}",
            1 => any::<String>(),
        ],
        any::<String>(),
        proptest::collection::vec(any::<u8>(), 0..64),
        proptest::collection::vec((any::<bool>(), any::<String>()), 0..4),
    )
        .prop_map(|(driver, endpoint, garbage, statuses)| Case {
            driver,
            endpoint,
            garbage,
            statuses,
        })
}

async fn run_case(case: Case) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let registrar = Registrar {
        driver: case.driver.clone(),
        endpoint: case.endpoint.clone(),
        socket: socket_path(dir.path().to_str().expect("UTF-8"), &case.driver),
        timeout: Duration::from_secs(1),
        exit_on_failure: true,
        state: Arc::new(Mutex::new(RegistrationState::Waiting)),
    };
    let listener = match socket::listen(&registrar.socket) {
        Ok(listener) => listener,
        // A name with `/`, NUL or too long for a socket path: an error to report, not a panic.
        Err(err) => {
            prop_assert!(!err.to_string().is_empty());
            return Ok(());
        }
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(registrar.clone().run(listener, shutdown.clone()));

    // Garbage that is not HTTP/2 at all: the connection is dropped, the server keeps serving.
    if let Ok(mut raw) = tokio::net::UnixStream::connect(&registrar.socket).await {
        let _ = raw.write_all(&case.garbage).await;
        let _ = raw.shutdown().await;
    }

    let kubelet = FakeKubelet::connect(&registrar.socket)
        .await
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let info = tokio::time::timeout(WAIT, kubelet.get_info())
        .await
        .map_err(|_| TestCaseError::fail("GetInfo timed out"))?
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&info.r#type, "CSIPlugin");
    prop_assert_eq!(&info.name, &case.driver);
    prop_assert_eq!(&info.endpoint, &case.endpoint);
    // The health check dials the same socket; whatever it says, it says it cleanly.
    let _ = registrar.health().await;

    let mut refused = None;
    for (registered, error) in &case.statuses {
        let answer = kubelet.notify_registration_status(*registered, error).await;
        prop_assert!(answer.is_ok(), "{answer:?}");
        if *registered {
            prop_assert_eq!(registrar.state(), RegistrationState::Registered);
        } else {
            prop_assert_eq!(registrar.state(), RegistrationState::Failed(error.clone()));
            refused = Some(error.clone());
            break;
        }
    }
    match refused {
        Some(reason) => {
            let result = tokio::time::timeout(WAIT, task)
                .await
                .map_err(|_| TestCaseError::fail("the registrar did not stop"))?
                .expect("the task");
            let err = result.expect_err("a refusal ends the standalone registrar");
            prop_assert!(err.to_string().contains(&reason), "{err}");
        }
        None => {
            shutdown.cancel();
            let result = tokio::time::timeout(WAIT, task)
                .await
                .map_err(|_| TestCaseError::fail("the registrar did not stop"))?
                .expect("the task");
            prop_assert!(result.is_ok(), "{result:?}");
            prop_assert!(!registrar.socket.exists());
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn registration_with_any_driver_and_kubelet_answers(case in case()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(run_case(case))?;
    }
}
