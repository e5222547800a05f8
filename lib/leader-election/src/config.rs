//! What an election is configured with, csi-lib-utils' defaults, and the helpers that turn the
//! sidecars' flags into it: [`sanitize_name`], [`default_namespace`], [`default_identity`],
//! [`parse_labels`].

use std::collections::BTreeMap;
use std::io;
use std::path::Path;
use std::time::Duration;

/// How long a candidate waits, from the last time it saw the lease change, before it may take
/// the lease over (csi-lib-utils' default; `--leader-election-lease-duration`).
pub const DEFAULT_LEASE_DURATION: Duration = Duration::from_secs(15);

/// How long the leader keeps retrying a failing renewal before it gives leadership up
/// (csi-lib-utils' default; `--leader-election-renew-deadline`).
pub const DEFAULT_RENEW_DEADLINE: Duration = Duration::from_secs(10);

/// The pause between two attempts to acquire or renew the lease (csi-lib-utils' default;
/// `--leader-election-retry-period`).
pub const DEFAULT_RETRY_PERIOD: Duration = Duration::from_secs(5);

/// How long past lease duration a leader that has not renewed stays healthy (csi-lib-utils'
/// `DefaultHealthCheckTimeout`).
pub const DEFAULT_HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(20);

/// client-go's `JitterFactor`: a candidate waits between one and 2.2 retry periods between two
/// attempts to acquire the lease, and the renew deadline must exceed 1.2 retry periods.
pub const JITTER_FACTOR: f64 = 1.2;

/// The name of the health check, so that it is served at [`HEALTH_CHECK_PATH`].
pub const HEALTH_CHECK_NAME: &str = "leader-election";

/// Where upstream serves the leader election health check (csi-lib-utils'
/// `HealthCheckerAddress`).
pub const HEALTH_CHECK_PATH: &str = "/healthz/leader-election";

/// The service account's namespace file, the last place [`default_namespace`] looks.
pub const SERVICE_ACCOUNT_NAMESPACE_FILE: &str =
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

/// What can be wrong with a [`Config`] or with the values the helpers parse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// client-go requires lease duration > renew deadline.
    #[error(
        "the lease duration ({lease_duration:?}) must be greater than the renew deadline ({renew_deadline:?})"
    )]
    LeaseDurationNotAboveRenewDeadline {
        /// The configured lease duration.
        lease_duration: Duration,
        /// The configured renew deadline.
        renew_deadline: Duration,
    },
    /// client-go requires renew deadline > retry period × [`JITTER_FACTOR`].
    #[error(
        "the renew deadline ({renew_deadline:?}) must be greater than the retry period ({retry_period:?}) times {JITTER_FACTOR}"
    )]
    RenewDeadlineNotAboveRetryPeriod {
        /// The configured renew deadline.
        renew_deadline: Duration,
        /// The configured retry period.
        retry_period: Duration,
    },
    /// A duration is zero.
    #[error("the {which} must be greater than zero")]
    ZeroDuration {
        /// Which one: "lease duration", "renew deadline" or "retry period".
        which: &'static str,
    },
    /// The lease stores its duration in whole seconds, as an `int32`.
    #[error("the lease duration ({0:?}) must be between 1s and 2147483647s")]
    LeaseDurationOutOfRange(Duration),
    /// The lease name, namespace or identity is empty.
    #[error("the leader election {which} must not be empty")]
    Empty {
        /// Which one: "lease name", "namespace" or "identity".
        which: &'static str,
    },
    /// An item of `--leader-election-labels` is not `key:value`.
    #[error("malformed item in list of labels: {item}")]
    MalformedLabel {
        /// The item, as given.
        item: String,
    },
    /// The host name could not be read.
    #[error("error getting the default leader identity")]
    Hostname(#[source] io::Error),
}

/// One election: which lease, who we are, and the timings.
///
/// [`Config::new`] fills in csi-lib-utils' defaults; change the public fields after that.
/// The lease name and the identity are passed through [`sanitize_name`] when the
/// [`LeaderElector`](crate::LeaderElector) is made, as csi-lib-utils does.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// The Lease's name before sanitizing, e.g. `external-attacher-leader-<driver>` (upstream's
    /// lock name: the Events' source names it as it is).
    pub lease_name: String,
    /// The Lease's namespace (see [`default_namespace`]).
    pub namespace: String,
    /// This candidate's identity, written to `holderIdentity` once sanitized (see
    /// [`hostname`] and [`default_identity`]); the Events' source names it as it is.
    pub identity: String,
    /// How long, after the lease last changed as seen by a candidate, the candidate waits before
    /// taking it over; written to the lease as whole seconds.
    pub lease_duration: Duration,
    /// How long the leader retries a failing renewal before leadership is lost.
    pub renew_deadline: Duration,
    /// The pause between attempts to acquire (with jitter) or renew.
    pub retry_period: Duration,
    /// Labels put on the lease when it is created and merged into its labels on every update
    /// (`--leader-election-labels`). Labels not named here are left alone; these are not removed
    /// when leadership ends (as client-go).
    pub labels: BTreeMap<String, String>,
    /// Release the lease (empty holder, duration 1s) when the election stops: on shutdown, and
    /// after losing it if we still appear to hold it (client-go's `ReleaseOnCancel`; upstream
    /// turns it on with the `ReleaseLeaderElectionOnExit` feature gate).
    pub release_on_cancel: bool,
    /// client-go's `LeaderElectionConfig.Name`: the `name` label of the metrics and the name in
    /// the health check's failure message. csi-lib-utils never sets it, so upstream sidecars
    /// expose `name=""`; [`Config::new`] keeps that. A process with several elections sharing
    /// one metrics registry must give each a distinct name (the lease name is a good one).
    pub name: String,
    /// How long past lease duration a leader that has not renewed still reports healthy.
    pub health_check_timeout: Duration,
}

impl Config {
    /// An election on `namespace/lease_name` as `identity`, with csi-lib-utils' defaults:
    /// 15s / 10s / 5s, no labels, no release on cancel, empty metrics name, 20s health timeout.
    pub fn new(
        lease_name: impl Into<String>,
        namespace: impl Into<String>,
        identity: impl Into<String>,
    ) -> Config {
        Config {
            lease_name: lease_name.into(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: DEFAULT_LEASE_DURATION,
            renew_deadline: DEFAULT_RENEW_DEADLINE,
            retry_period: DEFAULT_RETRY_PERIOD,
            labels: BTreeMap::new(),
            release_on_cancel: false,
            name: String::new(),
            health_check_timeout: DEFAULT_HEALTH_CHECK_TIMEOUT,
        }
    }

    /// Checks the configuration as client-go's `NewLeaderElector` does, plus what the Lease
    /// object needs (a lease duration of whole seconds that fits an `int32`, non-empty names).
    pub fn validate(&self) -> Result<(), Error> {
        if self.lease_duration <= self.renew_deadline {
            return Err(Error::LeaseDurationNotAboveRenewDeadline {
                lease_duration: self.lease_duration,
                renew_deadline: self.renew_deadline,
            });
        }
        if self.renew_deadline <= self.retry_period.mul_f64(JITTER_FACTOR) {
            return Err(Error::RenewDeadlineNotAboveRetryPeriod {
                renew_deadline: self.renew_deadline,
                retry_period: self.retry_period,
            });
        }
        for (which, duration) in [
            ("lease duration", self.lease_duration),
            ("renew deadline", self.renew_deadline),
            ("retry period", self.retry_period),
        ] {
            if duration.is_zero() {
                return Err(Error::ZeroDuration { which });
            }
        }
        // client-go truncates to whole seconds; a sub-second duration would be written as 0,
        // which every other candidate reads as "already expired".
        if self.lease_duration < Duration::from_secs(1)
            || i32::try_from(self.lease_duration.as_secs()).is_err()
        {
            return Err(Error::LeaseDurationOutOfRange(self.lease_duration));
        }
        for (which, value) in [
            ("lease name", &self.lease_name),
            ("namespace", &self.namespace),
            ("identity", &self.identity),
        ] {
            if value.is_empty() {
                return Err(Error::Empty { which });
            }
        }
        Ok(())
    }
}

/// The lease name and identity sanitizing of csi-lib-utils: the toolkit's one copy
/// ([`csi_controller::sanitize_name`]), re-exported here where leader election is configured.
pub use csi_controller::sanitize_name;

/// The namespace of the lease: `flag` (`--leader-election-namespace`) when it is not empty, else
/// `$POD_NAMESPACE`, else the service account's namespace file (trimmed), else `default` — as
/// csi-lib-utils does.
pub fn default_namespace(flag: &str) -> String {
    namespace_from(
        flag,
        std::env::var("POD_NAMESPACE").ok().as_deref(),
        Path::new(SERVICE_ACCOUNT_NAMESPACE_FILE),
    )
}

fn namespace_from(flag: &str, pod_namespace: Option<&str>, file: &Path) -> String {
    if !flag.is_empty() {
        return flag.to_string();
    }
    if let Some(namespace) = pod_namespace.filter(|ns| !ns.is_empty()) {
        return namespace.to_string();
    }
    if let Ok(data) = std::fs::read_to_string(file) {
        let namespace = data.trim();
        if !namespace.is_empty() {
            return namespace.to_string();
        }
    }
    "default".to_string()
}

/// The default holder identity: the host name (the pod's name in a pod), sanitized with
/// [`sanitize_name`] as csi-lib-utils does before using it.
pub fn default_identity() -> Result<String, Error> {
    hostname().map(|hostname| sanitize_name(&hostname))
}

/// The host name as it is, csi-lib-utils' identity before sanitizing (its LeaderElection
/// Events name it so in their source).
///
/// Read as Go's `os.Hostname` does on Linux, from `/proc/sys/kernel/hostname`; `$HOSTNAME` is
/// the fallback where that file does not exist.
pub fn hostname() -> Result<String, Error> {
    let hostname = match std::fs::read_to_string("/proc/sys/kernel/hostname") {
        Ok(data) => data.strip_suffix('\n').unwrap_or(&data).to_string(),
        Err(err) => match std::env::var("HOSTNAME") {
            Ok(hostname) if !hostname.is_empty() => hostname,
            _ => return Err(Error::Hostname(err)),
        },
    };
    if hostname.is_empty() {
        return Err(Error::Hostname(io::Error::new(
            io::ErrorKind::InvalidData,
            "the host name is empty",
        )));
    }
    Ok(hostname)
}

/// Parses one `--leader-election-labels` value, `key:value,key:value`, into `labels`, as
/// csi-lib-utils' flag type does: each comma-separated item must split on `:` into exactly two
/// parts (so an empty value is an error); a repeated flag adds to the same map, a later key wins.
///
/// ```
/// let mut labels = std::collections::BTreeMap::new();
/// csi_leader_election::parse_labels("app:csi,tier:storage", &mut labels)?;
/// assert_eq!(labels["tier"], "storage");
/// # Ok::<(), csi_leader_election::Error>(())
/// ```
pub fn parse_labels(value: &str, labels: &mut BTreeMap<String, String>) -> Result<(), Error> {
    for item in value.split(',') {
        let mut parts = item.split(':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(key), Some(value), None) => {
                labels.insert(key.to_string(), value.to_string());
            }
            _ => {
                return Err(Error::MalformedLabel {
                    item: item.to_string(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// csi-lib-utils' `Test_sanitizeName` table, then our own cases.
    #[test]
    fn sanitize_name_as_csi_lib_utils() {
        for (case, input, output) in [
            ("requires no change", "test-driver", "test-driver"),
            (
                "has characters that should be replaced",
                "test!driver/foo",
                "test-driver-foo",
            ),
            ("has trailing space", "driver\\", "driver-X"),
            // ours
            ("keeps case", "Test-Driver", "Test-Driver"),
            ("dots", "hostpath.csi.k8s.io", "hostpath-csi-k8s-io"),
            ("trailing dash", "driver-", "driver-X"),
            ("multi-byte character is one dash", "dé", "d-X"),
            ("underscore", "a_b", "a-b"),
            ("empty", "", ""),
        ] {
            assert_eq!(sanitize_name(input), output, "{case}");
        }
    }

    #[test]
    fn sanitize_name_is_idempotent() {
        for input in ["driver\\", "a.b.", "x", "-"] {
            let once = sanitize_name(input);
            assert_eq!(sanitize_name(&once), once);
        }
    }

    #[test]
    fn namespace_fallback_chain() {
        let dir = std::env::temp_dir().join(format!("le-ns-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("namespace");
        let missing = dir.join("missing");

        assert_eq!(namespace_from("flag", Some("pod"), &file), "flag");
        assert_eq!(namespace_from("", Some("pod"), &file), "pod");
        std::fs::write(&file, "  from-file\n").unwrap();
        assert_eq!(namespace_from("", Some(""), &file), "from-file");
        assert_eq!(namespace_from("", None, &file), "from-file");
        std::fs::write(&file, " \n").unwrap();
        assert_eq!(namespace_from("", None, &file), "default");
        assert_eq!(namespace_from("", None, &missing), "default");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn identity_is_the_sanitized_host_name() {
        let identity = default_identity().unwrap();
        assert!(!identity.is_empty());
        assert_eq!(sanitize_name(&identity), identity);
    }

    #[test]
    fn labels_as_csi_lib_utils() {
        let mut labels = BTreeMap::new();
        parse_labels("a:1,b:2", &mut labels).unwrap();
        parse_labels("b:3", &mut labels).unwrap();
        assert_eq!(
            labels,
            BTreeMap::from([("a".into(), "1".into()), ("b".into(), "3".into())])
        );
        // Go's strings.Split keeps empty parts.
        parse_labels(":v", &mut labels).unwrap();
        assert_eq!(labels[""], "v");
        for bad in ["", "a", "a:b:c", "a:1,", "a:1,b"] {
            let err = parse_labels(bad, &mut BTreeMap::new()).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("malformed item in list of labels: "),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn validation_as_client_go() {
        let ok = Config::new("lease", "ns", "me");
        ok.validate().unwrap();

        let mut c = ok.clone();
        c.lease_duration = Duration::from_secs(10);
        assert!(matches!(
            c.validate(),
            Err(Error::LeaseDurationNotAboveRenewDeadline { .. })
        ));

        let mut c = ok.clone();
        c.retry_period = Duration::from_millis(8334); // 8334 ms × 1.2 > 10 s
        assert!(matches!(
            c.validate(),
            Err(Error::RenewDeadlineNotAboveRetryPeriod { .. })
        ));
        c.retry_period = Duration::from_millis(8333);
        c.validate().unwrap();

        let mut c = ok.clone();
        c.retry_period = Duration::ZERO;
        assert!(matches!(
            c.validate(),
            Err(Error::ZeroDuration {
                which: "retry period"
            })
        ));

        let mut c = ok.clone();
        c.lease_duration = Duration::from_millis(900);
        c.renew_deadline = Duration::from_millis(500);
        c.retry_period = Duration::from_millis(100);
        assert!(matches!(
            c.validate(),
            Err(Error::LeaseDurationOutOfRange(_))
        ));

        for field in 0..3 {
            let mut c = ok.clone();
            match field {
                0 => c.lease_name.clear(),
                1 => c.namespace.clear(),
                _ => c.identity.clear(),
            }
            assert!(matches!(c.validate(), Err(Error::Empty { .. })));
        }
    }
}
