//! A component without a CSI driver (the snapshot-controller): the process has no
//! `--csi-address`, dials nothing, serves only the start time and the component's own metrics,
//! and a call through `Shared::csi` fails instead of hanging.
//!
//! The whole process runtime runs in this test binary (its own process), so it has only this
//! one test: `run` installs the global logger and the signal handlers.

use std::time::Duration;

use csi_sidecar_runtime::controller::no_validation;
use csi_sidecar_runtime::process::{run, standalone_flags};
use csi_sidecar_runtime::{
    BoxFuture, Controller, Descriptor, DriverUse, Flag, HttpDefaults, InitContext, InitError, Kind,
    Mode, Upstream,
};
use csi_test_support::{free_port, http_get, wait_for_status};

const FLAGS: &[Flag] = &[
    Flag::new("http-endpoint", Kind::String, "", "address").process(),
    Flag::new("metrics-path", Kind::String, "/metrics", "path").process(),
];

fn init(ctx: InitContext) -> BoxFuture<'static, Result<Controller, InitError>> {
    Box::pin(async move {
        let call =
            csi_connection::rpc::get_driver_name(&ctx.shared.csi, Some(Duration::from_secs(5)))
                .await;
        if call.is_ok() {
            return Err(anyhow::anyhow!("a component without a driver reached one").into());
        }
        let shutdown = ctx.shared.shutdown.clone();
        Ok(Controller::new(async move {
            shutdown.cancelled().await;
            Ok(())
        }))
    })
}

static NO_DRIVER: Descriptor = Descriptor {
    name: "cluster-controller",
    aliases: &[],
    disabled_by_default: false,
    binary: "cluster-controller",
    about: "test",
    upstream: Upstream {
        repo: "test",
        version: "v0",
    },
    flag_groups: &[FLAGS],
    features: &[],
    driver: DriverUse::None,
    kube: None,
    http: HttpDefaults {
        default_port: None,
        serves_metrics: true,
    },
    validate: no_validation,
    init,
};

#[test]
fn a_component_without_a_driver_runs_without_one() {
    let flags = standalone_flags(&NO_DRIVER);
    assert!(
        !flags
            .command()
            .clone()
            .render_long_help()
            .to_string()
            .contains("csi-address"),
        "no --csi-address for a component without a driver"
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let args: Vec<std::ffi::OsString> = vec![
        "cluster-controller".into(),
        format!("--http-endpoint={address}").into(),
    ];
    let process = std::thread::spawn(move || {
        run(Mode::Standalone, "cluster-controller", &flags, args, |_| {
            Ok(vec![&NO_DRIVER])
        })
    });

    rt.block_on(async {
        wait_for_status(&address, "/healthz", 200, Duration::from_secs(20))
            .await
            .unwrap();
        let (_, metrics) = http_get(&address, "/metrics").await.unwrap();
        assert!(metrics.contains("process_start_time_seconds"), "{metrics}");
        assert!(
            !metrics.contains("csi_sidecar_operations_seconds"),
            "{metrics}"
        );
        assert!(
            !metrics.contains("process_resident_memory_bytes"),
            "{metrics}"
        );
    });

    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(process.join().unwrap(), 0);
}
