//! The scenario of the isolation tests: `csi-sidecars` with two controllers that use the API
//! server, under leader election on the real control plane. One panics in its first run; the
//! other keeps working, `/healthz` names the failed one, and it is restarted.
//!
//! The process runtime runs inside the test binary (it installs the global logger and signal
//! handlers), so each lease mode is a test binary of its own with this one scenario.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use csi_e2e_support::{E2eEnv, TestNamespace};
use csi_sidecar_runtime::controller::no_validation;
use csi_sidecar_runtime::kube::KubeUse;
use csi_sidecar_runtime::process::{aggregate_flags, run};
use csi_sidecar_runtime::{
    BoxFuture, CheckResult, Controller, Descriptor, DriverUse, HttpDefaults, InitContext,
    InitError, Mode, Upstream,
};
use csi_test_support::{MockCsiDriver, free_port, http_get};
use k8s_openapi::api::core::v1::ConfigMap;

/// How many times `panicky`'s `init` ran.
static PANICKY_INITS: AtomicUsize = AtomicUsize::new(0);
/// Set once the test has seen the failure: the restarted `panicky` may then start.
static LET_PANICKY_RESTART: AtomicBool = AtomicBool::new(false);
/// How many API calls `steady` made in its run.
static STEADY_CALLS: AtomicUsize = AtomicUsize::new(0);

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

/// Reads ConfigMaps from the API server until shutdown; its health check passes while its run
/// is alive.
fn steady(ctx: InitContext) -> BoxFuture<'static, Result<Controller, InitError>> {
    Box::pin(async move {
        let client = ctx
            .shared
            .kube()
            .client_for(&ctx.flags, "steady")
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
            let api: kube::Api<ConfigMap> = kube::Api::namespaced(client, "default");
            loop {
                api.list(&Default::default()).await?;
                STEADY_CALLS.fetch_add(1, Ordering::SeqCst);
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }))
    })
}

fn panicky_lease(driver: &str) -> String {
    format!("e2e-isolation-panicky-{driver}")
}

fn steady_lease(driver: &str) -> String {
    format!("e2e-isolation-steady-{driver}")
}

const fn descriptor(
    name: &'static str,
    init: csi_sidecar_runtime::controller::InitFn,
    lease_name: fn(&str) -> String,
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
        flag_groups: &[csi_sidecar_runtime::kube::FLAGS],
        features: &[],
        driver: DriverUse::StartupOnly {
            wait_forever: false,
        },
        kube: Some(KubeUse {
            lease_name,
            user_agent: name,
            kubeconfig_env: false,
        }),
        http: HttpDefaults {
            default_port: None,
            serves_metrics: true,
        },
        validate: no_validation,
        init,
    }
}

static PANICKY: Descriptor = descriptor("panicky", panicky, panicky_lease);
static STEADY: Descriptor = descriptor("steady", steady, steady_lease);
static TABLE: &[&Descriptor] = &[&PANICKY, &STEADY];

/// Polls `path` until `done` accepts the answer.
async fn wait_until(
    address: &str,
    path: &str,
    what: &str,
    done: impl Fn(u16, &str) -> bool,
) -> (u16, String) {
    let mut last = None;
    for _ in 0..1200 {
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

/// Runs the scenario with `extra` flags (the lease mode).
pub fn one_panics_the_other_works(extra: &[&str]) {
    let env = E2eEnv::from_env().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let driver = rt.block_on(MockCsiDriver::start()).unwrap();
    let admin = rt.block_on(env.admin()).unwrap();
    let namespace = rt
        .block_on(TestNamespace::create(&admin, "isolation"))
        .unwrap();
    let address = format!("127.0.0.1:{}", free_port());
    let mut args: Vec<std::ffi::OsString> = vec![
        "csi-sidecars".into(),
        format!("--csi-address={}", driver.endpoint()).into(),
        "--controllers=*".into(),
        format!("--http-endpoint={address}").into(),
        format!("--kubeconfig={}", env.kubeconfig.display()).into(),
        "--leader-election".into(),
        format!("--leader-election-namespace={}", namespace.name).into(),
        "--leader-election-identity=e2e-isolation".into(),
    ];
    args.extend(extra.iter().map(Into::into));
    let process = std::thread::spawn(move || {
        let flags = aggregate_flags("csi-sidecars", TABLE);
        run(Mode::Aggregate, "csi-sidecars", &flags, args, |process| {
            csi_sidecar_runtime::controller::select(TABLE, &process.string("controllers"))
                .map_err(|e| e.to_string())
        })
    });

    rt.block_on(async {
        let (status, body) = wait_until(&address, "/healthz?verbose", "named panicky", |_, b| {
            b.contains("[-]panicky failed: controller panicked: boom")
        })
        .await;
        assert_eq!(status, 500, "{body}");
        assert!(body.contains("[+]steady ok\n"), "{body}");
        assert!(body.contains("[+]leader-election ok\n"), "{body}");
        assert_eq!(
            http_get(&address, "/healthz/steady").await.unwrap(),
            (200, "ok".to_string())
        );
        // The other controller goes on talking to the API server.
        let calls = STEADY_CALLS.load(Ordering::SeqCst);
        wait_until(
            &address,
            "/healthz/steady",
            "seen more API calls",
            |_, _| STEADY_CALLS.load(Ordering::SeqCst) > calls + 2,
        )
        .await;
        wait_until(&address, "/metrics", "counted the restart", |_, m| {
            m.contains(r#"csi_sidecars_controller_restarts_total{controller="panicky"} 1"#)
        })
        .await;

        LET_PANICKY_RESTART.store(true, Ordering::SeqCst);
        let (_, body) = wait_until(&address, "/healthz?verbose", "healthy again", |s, _| {
            s == 200
        })
        .await;
        assert!(body.contains("[+]panicky ok\n"), "{body}");
        assert!(body.contains("[+]steady ok\n"), "{body}");
        assert_eq!(PANICKY_INITS.load(Ordering::SeqCst), 2);
    });

    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(process.join().unwrap(), 0);
    rt.block_on(namespace.delete()).unwrap();
    drop(driver);
}
