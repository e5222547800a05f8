//! In `csi-sidecars`, a controller that panics, or fails to start, is reported under its own
//! name — `/healthz`, `/healthz/<controller>` and
//! `csi_sidecars_controller_restarts_total{controller}` — and restarted, while the other
//! controller keeps working.
//!
//! The whole process runtime runs in this test binary (its own process), so it has only this
//! one test: `run` installs the global logger and the signal handlers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use csi_sidecar_runtime::controller::no_validation;
use csi_sidecar_runtime::process::{aggregate_flags, run};
use csi_sidecar_runtime::{
    BoxFuture, CheckResult, Controller, Descriptor, DriverUse, HttpDefaults, InitContext,
    InitError, Mode, Upstream,
};
use csi_test_support::{MockCsiDriver, free_port, http_get};

/// How many times `panicky`'s `init` ran.
static PANICKY_INITS: AtomicUsize = AtomicUsize::new(0);
/// Set by the test once it has seen the failure: the restarted `panicky` may then start.
static LET_PANICKY_RESTART: AtomicBool = AtomicBool::new(false);

/// Panics in its first run; its restart waits for the test, then runs until shutdown.
fn panicky(ctx: InitContext) -> BoxFuture<'static, Result<Controller, InitError>> {
    Box::pin(async move {
        if PANICKY_INITS.fetch_add(1, Ordering::SeqCst) == 0 {
            return Ok(Controller::new(async {
                if true {
                    panic!("boom");
                }
                Ok(())
            }));
        }
        while !LET_PANICKY_RESTART.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let shutdown = ctx.shared.shutdown.clone();
        Ok(Controller::new(async move {
            shutdown.cancelled().await;
            Ok(())
        }))
    })
}

/// How many times `late`'s `init` ran.
static LATE_INITS: AtomicUsize = AtomicUsize::new(0);

/// Fails to start; its restart waits for the test, then runs until shutdown.
fn late(ctx: InitContext) -> BoxFuture<'static, Result<Controller, InitError>> {
    Box::pin(async move {
        if LATE_INITS.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(InitError::Failed(anyhow::anyhow!("driver said no")));
        }
        while !LET_PANICKY_RESTART.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let shutdown = ctx.shared.shutdown.clone();
        Ok(Controller::new(async move {
            shutdown.cancelled().await;
            Ok(())
        }))
    })
}

/// Runs until shutdown; its health check passes only while its run is alive.
fn steady(ctx: InitContext) -> BoxFuture<'static, Result<Controller, InitError>> {
    Box::pin(async move {
        ctx.shared
            .driver_name(None)
            .await
            .map_err(anyhow::Error::from)?;
        let alive = Arc::new(());
        let watch = Arc::downgrade(&alive);
        ctx.shared.health.register(ctx.name, move || {
            let running = watch.strong_count() > 0;
            async move {
                if running {
                    CheckResult::Ok
                } else {
                    CheckResult::failed("steady stopped")
                }
            }
        });
        let shutdown = ctx.shared.shutdown.clone();
        Ok(Controller::new(async move {
            let _alive = alive;
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

static PANICKY: Descriptor = descriptor("panicky", panicky);
static STEADY: Descriptor = descriptor("steady", steady);
static LATE: Descriptor = descriptor("late", late);
static TABLE: &[&Descriptor] = &[&PANICKY, &STEADY, &LATE];

/// Polls `path` until `done` accepts the answer.
async fn wait_until(
    address: &str,
    path: &str,
    what: &str,
    done: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let mut last = None;
    for _ in 0..600 {
        if let Ok((status, body)) = http_get(address, path).await {
            if done(status, &body) {
                return (status, body);
            }
            last = Some((status, body));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{path}: never {what}; last answer: {last:?}");
}

#[test]
fn a_panicking_controller_is_reported_by_name_and_restarted_while_the_other_runs_on() {
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
        // The failure is reported under the controller's name, the other controller is fine.
        let (status, body) = wait_until(&address, "/healthz?verbose", "named panicky", |_, b| {
            b.contains("[-]panicky failed: controller panicked: boom")
        })
        .await;
        assert_eq!(status, 500, "{body}");
        assert!(body.contains("[+]steady ok\n"), "{body}");
        assert!(body.contains("(restarting in 1s)"), "{body}");
        assert!(body.contains("[-]late failed: driver said no ("), "{body}");
        let (status, body) = http_get(&address, "/healthz/panicky").await.unwrap();
        assert_eq!(status, 500, "{body}");
        assert!(body.contains("controller panicked: boom"), "{body}");
        assert_eq!(
            http_get(&address, "/healthz/steady").await.unwrap(),
            (200, "ok".to_string())
        );

        // The restart is counted (its `init` waits for us, so the count stays at one).
        let (_, metrics) = wait_until(&address, "/metrics", "counted the restarts", |_, m| {
            m.contains(r#"csi_sidecars_controller_restarts_total{controller="panicky"} 1"#)
                && m.contains(r#"csi_sidecars_controller_restarts_total{controller="late"} 1"#)
        })
        .await;
        assert!(
            metrics.contains(r#"csi_sidecars_controller_restarts_total{controller="steady"} 0"#),
            "{metrics}"
        );
        assert!(
            metrics.contains(r#"csi_sidecars_controller_enabled{controller="panicky"} 1"#),
            "{metrics}"
        );

        // Once the restarted controller runs, every check passes again.
        LET_PANICKY_RESTART.store(true, Ordering::SeqCst);
        let (_, body) = wait_until(&address, "/healthz?verbose", "healthy again", |s, _| {
            s == 200
        })
        .await;
        assert!(body.contains("[+]panicky ok\n"), "{body}");
        assert!(body.contains("[+]steady ok\n"), "{body}");
        assert!(body.contains("[+]late ok\n"), "{body}");
        assert_eq!(PANICKY_INITS.load(Ordering::SeqCst), 2);
        assert_eq!(LATE_INITS.load(Ordering::SeqCst), 2);
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
