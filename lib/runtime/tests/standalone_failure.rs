//! A standalone sidecar whose controller fails exits 1, as upstream (the kubelet restarts the
//! container): no restart inside the process.
//!
//! The whole process runtime runs in this test binary (its own process), so it has only this
//! one test: `run` installs the global logger and the signal handlers.

use std::sync::atomic::{AtomicUsize, Ordering};

use csi_sidecar_runtime::controller::no_validation;
use csi_sidecar_runtime::process::{run, standalone_flags};
use csi_sidecar_runtime::{
    BoxFuture, Controller, Descriptor, DriverUse, Flag, HttpDefaults, InitContext, InitError, Kind,
    Mode, Upstream,
};
use csi_test_support::MockCsiDriver;

static INITS: AtomicUsize = AtomicUsize::new(0);

fn panics(_: InitContext) -> BoxFuture<'static, Result<Controller, InitError>> {
    Box::pin(async {
        INITS.fetch_add(1, Ordering::SeqCst);
        Ok(Controller::new(async {
            if true {
                panic!("boom");
            }
            Ok(())
        }))
    })
}

const FLAGS: &[Flag] = &[
    Flag::new("csi-address", Kind::String, "/run/csi/socket", "").process(),
    Flag::new("http-endpoint", Kind::String, "", "").process(),
];

static PANICS: Descriptor = Descriptor {
    name: "panicky",
    aliases: &[],
    disabled_by_default: false,
    binary: "csi-panicky",
    about: "test",
    upstream: Upstream {
        repo: "test",
        version: "v0",
    },
    flag_groups: &[FLAGS],
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
    init: panics,
};

#[test]
fn a_failed_controller_ends_a_standalone_sidecar_with_exit_code_1() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let driver = rt.block_on(MockCsiDriver::start()).unwrap();
    let args: Vec<std::ffi::OsString> = vec![
        "csi-panicky".into(),
        format!("--csi-address={}", driver.endpoint()).into(),
    ];
    let code = std::thread::spawn(move || {
        run(
            Mode::Standalone,
            "csi-panicky",
            &standalone_flags(&PANICS),
            args,
            |_| Ok(vec![&PANICS]),
        )
    })
    .join()
    .unwrap();
    assert_eq!(code, 1);
    assert_eq!(INITS.load(Ordering::SeqCst), 1, "no restart standalone");
    drop(driver);
}
