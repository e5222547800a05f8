//! Named health checks, one or more per controller, served at `/healthz` (all of them) and
//! `/healthz/<name>` (one), in the style of Kubernetes' healthz package.
//!
//! With a single check (a standalone sidecar), `/healthz` answers exactly as the upstream
//! sidecar does: its status code and its body (`ok`, or the reason). With several, the body
//! lists each check as `[+]name ok` / `[-]name failed: reason`, and the status is 200 only if
//! every check passed.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

pub use http::StatusCode;

/// The outcome of one health check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    /// Healthy.
    Ok,
    /// Healthy, with a note (a controller that is disabled because the driver lacks a
    /// capability: the process is fine, and the note says why the controller does nothing).
    OkWithNote(String),
    /// Unhealthy, with the HTTP status upstream answers and the reason.
    Failed {
        /// 500 in most cases; 404 where upstream says "not found".
        status: StatusCode,
        /// Why, in words.
        reason: String,
    },
}

impl CheckResult {
    /// A 500 failure.
    pub fn failed(reason: impl Into<String>) -> Self {
        CheckResult::Failed {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            reason: reason.into(),
        }
    }

    /// Whether the check passed.
    pub fn is_ok(&self) -> bool {
        !matches!(self, CheckResult::Failed { .. })
    }
}

type CheckFuture = Pin<Box<dyn Future<Output = CheckResult> + Send>>;
type CheckFn = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// The process's health checks. Cheap to clone; clones share the list.
///
/// Besides the checks themselves, a name can be marked failed ([`Health::set_failed`]): the
/// runtime does so for a controller that stopped with an error or a panic and waits to be
/// restarted, whatever the controller's own check (if it has one) would say.
#[derive(Clone, Default)]
pub struct Health {
    checks: Arc<Mutex<Vec<(String, CheckFn)>>>,
    failures: Arc<Mutex<BTreeMap<String, String>>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Health {
    /// Adds a check under `name`. A second check with the same name replaces the first.
    pub fn register<F, Fut>(&self, name: impl Into<String>, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CheckResult> + Send + 'static,
    {
        let name = name.into();
        let check: CheckFn = Arc::new(move || Box::pin(check()));
        let mut checks = self.checks.lock().unwrap_or_else(|e| e.into_inner());
        checks.retain(|(n, _)| *n != name);
        checks.push((name, check));
    }

    /// Adds a check that always reports the same result.
    pub fn register_static(&self, name: impl Into<String>, result: CheckResult) {
        self.register(name, move || {
            let result = result.clone();
            async move { result }
        });
    }

    /// Adds a check that always passes under `name`, unless a check of that name exists.
    pub fn register_if_absent(&self, name: impl Into<String>) {
        let name = name.into();
        let mut checks = self.checks.lock().unwrap_or_else(|e| e.into_inner());
        if !checks.iter().any(|(n, _)| *n == name) {
            let check: CheckFn = Arc::new(|| Box::pin(std::future::ready(CheckResult::Ok)));
            checks.push((name, check));
        }
    }

    /// Reports `name` as failed with `reason` until [`Health::clear_failed`], whatever its own
    /// check says; a name without a check is listed too.
    pub fn set_failed(&self, name: impl Into<String>, reason: impl Into<String>) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.into(), reason.into());
    }

    /// Lets `name`'s own check speak again.
    pub fn clear_failed(&self, name: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
    }

    /// The names of all checks, in registration order, then names only marked failed.
    pub fn names(&self) -> Vec<String> {
        self.snapshot().into_iter().map(|(n, _)| n).collect()
    }

    /// Every check in order; a name marked failed answers its failure instead of its check.
    fn snapshot(&self) -> Vec<(String, CheckFn)> {
        let mut checks = self
            .checks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let failures = self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (name, reason) in failures {
            let failed: CheckFn =
                Arc::new(move || Box::pin(std::future::ready(CheckResult::failed(reason.clone()))));
            match checks.iter_mut().find(|(n, _)| *n == name) {
                Some((_, check)) => *check = failed,
                None => checks.push((name, failed)),
            }
        }
        checks
    }

    /// Runs one check; `None` if there is no check of that name.
    pub async fn check_one(&self, name: &str) -> Option<CheckResult> {
        let check = self
            .snapshot()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| c)?;
        Some(check().await)
    }

    /// Runs every check concurrently and renders the `/healthz` answer.
    pub async fn check_all(&self, verbose: bool) -> (StatusCode, String) {
        let checks = self.snapshot();
        let handles: Vec<_> = checks
            .into_iter()
            .map(|(name, check)| (name, tokio::spawn(check())))
            .collect();
        let mut results = Vec::with_capacity(handles.len());
        for (name, handle) in handles {
            let result = handle
                .await
                .unwrap_or_else(|e| CheckResult::failed(format!("health check panicked: {e}")));
            results.push((name, result));
        }
        render(&results, verbose)
    }
}

fn render(results: &[(String, CheckResult)], verbose: bool) -> (StatusCode, String) {
    if let [(_, only)] = results
        && !verbose
    {
        return match only {
            CheckResult::Ok | CheckResult::OkWithNote(_) => (StatusCode::OK, "ok".to_string()),
            CheckResult::Failed { status, reason } => (*status, reason.clone()),
        };
    }
    let all_ok = results.iter().all(|(_, r)| r.is_ok());
    if all_ok && !verbose {
        return (StatusCode::OK, "ok".to_string());
    }
    let mut body = String::new();
    for (name, result) in results {
        match result {
            CheckResult::Ok => body.push_str(&format!("[+]{name} ok\n")),
            CheckResult::OkWithNote(note) => body.push_str(&format!("[+]{name} ok: {note}\n")),
            CheckResult::Failed { reason, .. } => {
                body.push_str(&format!("[-]{name} failed: {reason}\n"))
            }
        }
    }
    if all_ok {
        body.push_str("healthz check passed\n");
        (StatusCode::OK, body)
    } else {
        body.push_str("healthz check failed\n");
        (StatusCode::INTERNAL_SERVER_ERROR, body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_single_check_answers_like_the_upstream_sidecar() {
        let health = Health::default();
        health.register_static("livenessprobe", CheckResult::Ok);
        assert_eq!(health.check_all(false).await, (StatusCode::OK, "ok".into()));

        health.register_static(
            "livenessprobe",
            CheckResult::failed("driver responded but is not ready"),
        );
        assert_eq!(
            health.check_all(false).await,
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "driver responded but is not ready".into()
            )
        );
        health.register_static(
            "livenessprobe",
            CheckResult::Failed {
                status: StatusCode::NOT_FOUND,
                reason: "registration socket does not exist".into(),
            },
        );
        assert_eq!(health.check_all(false).await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn several_checks_are_listed_and_all_must_pass() {
        let health = Health::default();
        health.register_static("livenessprobe", CheckResult::Ok);
        health.register_static(
            "attacher",
            CheckResult::OkWithNote("disabled: driver lacks PUBLISH_UNPUBLISH_VOLUME".into()),
        );
        let (status, body) = health.check_all(false).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok"));
        let (status, body) = health.check_all(true).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("[+]livenessprobe ok\n"), "{body}");
        assert!(body.contains("[+]attacher ok: disabled"), "{body}");

        health.register_static("node-driver-registrar", CheckResult::failed("boom"));
        let (status, body) = health.check_all(false).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            body.contains("[-]node-driver-registrar failed: boom\n"),
            "{body}"
        );
        assert!(body.ends_with("healthz check failed\n"), "{body}");

        assert_eq!(
            health.check_one("livenessprobe").await,
            Some(CheckResult::Ok)
        );
        assert_eq!(health.check_one("nothing").await, None);
    }

    #[tokio::test]
    async fn a_name_marked_failed_overrides_its_check_until_cleared() {
        let health = Health::default();
        health.register_static("livenessprobe", CheckResult::Ok);
        health.register_if_absent("livenessprobe");
        health.register_if_absent("attacher");
        assert_eq!(health.names(), vec!["livenessprobe", "attacher"]);
        assert_eq!(health.check_all(false).await.0, StatusCode::OK);

        health.set_failed("attacher", "controller panicked: boom");
        health.set_failed("provisioner", "controller failed: no");
        let (status, body) = health.check_all(false).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("[+]livenessprobe ok\n"), "{body}");
        assert!(
            body.contains("[-]attacher failed: controller panicked: boom\n"),
            "{body}"
        );
        assert!(
            body.contains("[-]provisioner failed: controller failed: no\n"),
            "{body}"
        );
        assert_eq!(
            health.check_one("attacher").await,
            Some(CheckResult::failed("controller panicked: boom"))
        );

        health.clear_failed("attacher");
        health.clear_failed("provisioner");
        assert_eq!(health.check_one("attacher").await, Some(CheckResult::Ok));
        assert_eq!(health.check_one("provisioner").await, None);
        assert_eq!(health.check_all(false).await.0, StatusCode::OK);
    }
}
