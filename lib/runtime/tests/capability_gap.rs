//! In `csi-sidecars`, a controller whose driver lacks what it needs is disabled — a log line, a
//! health entry and `csi_sidecars_controller_enabled{controller} 0` — and the others run on.
//! (Standalone, the same gap ends the process, as upstream.)
//!
//! The whole process runtime runs in this test binary (its own process), so it has only this
//! one test: `run` installs the global logger and the signal handlers.

use std::time::Duration;

use csi_sidecar_runtime::controller::no_validation;
use csi_sidecar_runtime::process::{aggregate_flags, run};
use csi_sidecar_runtime::{
    BoxFuture, Controller, Descriptor, DriverUse, HttpDefaults, InitContext, InitError, Mode,
    Upstream,
};
use csi_test_support::{MockCsiDriver, free_port, http_get, wait_for_status};

fn needs_snapshots(_: InitContext) -> BoxFuture<'static, Result<Controller, InitError>> {
    Box::pin(async {
        Err(InitError::Disabled(
            "CSI driver does not support CREATE_DELETE_SNAPSHOT".to_string(),
        ))
    })
}

fn works(ctx: InitContext) -> BoxFuture<'static, Result<Controller, InitError>> {
    Box::pin(async move {
        ctx.shared
            .driver_name(None)
            .await
            .map_err(anyhow::Error::from)?;
        let shutdown = ctx.shared.shutdown.clone();
        Ok(Controller::new(async move {
            shutdown.cancelled().await;
            Ok(())
        }))
    })
}

const fn descriptor(
    name: &'static str,
    init: csi_sidecar_runtime::controller::InitFn,
) -> Descriptor {
    Descriptor {
        name,
        aliases: &[],
        disabled_by_default: false,
        binary: name,
        about: "test",
        upstream: Upstream {
            repo: "test",
            version: "v0",
        },
        flag_groups: &[],
        features: &[],
        driver: DriverUse::StartupOnly {
            wait_forever: false,
        },
        kube: None,
        http: HttpDefaults {
            default_port: None,
            serves_metrics: false,
        },
        validate: no_validation,
        init,
    }
}

static GAP: Descriptor = descriptor("snapshotter", needs_snapshots);
static WORKS: Descriptor = descriptor("prober", works);
static TABLE: &[&Descriptor] = &[&GAP, &WORKS];

#[test]
fn a_capability_gap_disables_one_controller_not_the_process() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let driver = rt.block_on(MockCsiDriver::start()).unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let args: Vec<std::ffi::OsString> = vec![
        "csi-sidecars".into(),
        format!("--csi-address={}", driver.endpoint()).into(),
        "--controllers=*".into(),
        format!("--http-endpoint={address}").into(),
    ];
    let process = std::thread::spawn(move || {
        let flags = aggregate_flags("csi-sidecars", TABLE);
        run(Mode::Aggregate, "csi-sidecars", &flags, args, |process| {
            csi_sidecar_runtime::controller::select(TABLE, &process.string("controllers"))
                .map_err(|e| e.to_string())
        })
    });

    rt.block_on(async {
        let body = wait_for_status(&address, "/healthz?verbose", 200, Duration::from_secs(20))
            .await
            .unwrap();
        assert!(
            body.contains(
                "[+]snapshotter ok: disabled: CSI driver does not support CREATE_DELETE_SNAPSHOT"
            ),
            "{body}"
        );
        let (_, metrics) = http_get(&address, "/metrics").await.unwrap();
        assert!(
            metrics.contains(r#"csi_sidecars_controller_enabled{controller="snapshotter"} 0"#),
            "{metrics}"
        );
        assert!(
            metrics.contains(r#"csi_sidecars_controller_enabled{controller="prober"} 1"#),
            "{metrics}"
        );
    });

    // A graceful stop: the process answers SIGTERM with exit code 0.
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(process.join().unwrap(), 0);
    drop(driver);
}
