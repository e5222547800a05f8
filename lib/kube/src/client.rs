//! Kubernetes clients: from `--kubeconfig` or in-cluster, with a user agent per binary and the
//! `--kube-api-qps` / `--kube-api-burst` budget enforced on our side, as client-go's token
//! bucket does (kube-rs has no client-side rate limiter).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::Instant;

use http::{HeaderName, HeaderValue};
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tower::{Layer, Service};

/// Errors building a client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig could not be read or used.
    #[error("failed to load kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// Neither `--kubeconfig` nor an in-cluster service account is available.
    #[error("failed to build an in-cluster config (no --kubeconfig given): {0}")]
    InCluster(#[source] kube::config::InClusterError),
    /// The QPS or burst value is unusable.
    #[error("invalid client rate limit: {0}")]
    RateLimit(String),
    /// The user agent is not a valid header value.
    #[error("invalid user agent {0:?}")]
    UserAgent(String),
    /// kube could not build the client.
    #[error("failed to create the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
}

/// How to build a client.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// `--kubeconfig`; in-cluster configuration when `None`.
    pub kubeconfig: Option<PathBuf>,
    /// `--kube-api-qps` (client-go's default for the sidecars: 5).
    pub qps: f64,
    /// `--kube-api-burst` (default 10).
    pub burst: u32,
    /// `csi-attacher/v0.1.0`, `csi-sidecars/v0.1.0`.
    pub user_agent: String,
    /// API groups with a `qps`/`burst` budget of their own, as upstream reaches them through
    /// a clientset of their own; the groups of one entry share one budget.
    pub separate_budgets: &'static [&'static [&'static str]],
}

/// The API groups of external-snapshotter's clientset (upstream's snapshot-controller,
/// csi-snapshotter and csi-provisioner reach them through it, with a budget of its own).
pub const SNAPSHOT_CLIENTSET: &[&str] =
    &["snapshot.storage.k8s.io", "groupsnapshot.storage.k8s.io"];
/// The API group of the Gateway API clientset (csi-provisioner's ReferenceGrants).
pub const GATEWAY_CLIENTSET: &[&str] = &["gateway.networking.k8s.io"];

/// Loads the configuration (kubeconfig or in-cluster) once; [`client`] turns it into clients.
pub async fn load_config(kubeconfig: Option<&PathBuf>) -> Result<Config, Error> {
    match kubeconfig {
        Some(path) => {
            let err = |source| Error::Kubeconfig {
                path: path.clone(),
                source,
            };
            let file = Kubeconfig::read_from(path).map_err(err)?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(err)
        }
        None => Config::incluster().map_err(Error::InCluster),
    }
}

/// A client for `config` with its own rate limit and user agent. Each call gives an
/// independent budget: in `csi-sidecars` a controller with its own `--<name>-kube-api-qps`
/// gets its own client.
pub fn client(mut config: Config, options: &ClientOptions) -> Result<Client, Error> {
    let agent = HeaderValue::from_str(&options.user_agent)
        .map_err(|_| Error::UserAgent(options.user_agent.clone()))?;
    config
        .headers
        .retain(|(name, _)| name != http::header::USER_AGENT);
    config
        .headers
        .push((HeaderName::from_static("user-agent"), agent));
    let budgets = Budgets::new(options.qps, options.burst, options.separate_budgets)?;
    let builder = ClientBuilder::try_from(config).map_err(Error::Client)?;
    Ok(builder
        .with_layer(&RateLimitLayer::with_budgets(budgets))
        .build())
}

/// A token bucket as client-go's `flowcontrol.NewTokenBucketRateLimiter(qps, burst)`: starts
/// full, refills at `qps` tokens a second up to `burst`, and a request that finds it empty
/// reserves the next token and waits for it.
#[derive(Debug)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    state: Mutex<BucketState>,
}

#[derive(Debug)]
struct BucketState {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A bucket of `burst` tokens refilled at `qps` per second. A non-positive `qps` means
    /// no limit, as client-go treats it.
    pub fn new(qps: f64, burst: u32) -> Result<Arc<TokenBucket>, Error> {
        if qps.is_nan() {
            return Err(Error::RateLimit("qps is not a number".to_string()));
        }
        if qps > 0.0 && burst == 0 {
            return Err(Error::RateLimit(
                "burst must be positive when qps is set".to_string(),
            ));
        }
        Ok(Arc::new(TokenBucket {
            qps,
            burst: f64::from(burst),
            state: Mutex::new(BucketState {
                tokens: f64::from(burst),
                last: Instant::now(),
            }),
        }))
    }

    /// Takes a token; returns how long to wait before using it.
    pub fn reserve(&self) -> Duration {
        self.reserve_at(Instant::now())
    }

    fn reserve_at(&self, now: Instant) -> Duration {
        if self.qps <= 0.0 || !self.qps.is_finite() {
            return Duration::ZERO;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let elapsed = now.saturating_duration_since(state.last).as_secs_f64();
        state.tokens = (state.tokens + elapsed * self.qps).min(self.burst);
        state.last = now;
        state.tokens -= 1.0;
        if state.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-state.tokens / self.qps)
        }
    }
}

/// The token buckets of one client: one for the API groups upstream reaches through a
/// clientset of their own (each Go clientset built from the same `rest.Config` gets its own
/// limiter: the snapshot-controller's snapshot clientset and its core clientset each may
/// send `--kube-api-qps`), and one for every other request.
#[derive(Debug)]
pub struct Budgets {
    default: Arc<TokenBucket>,
    groups: Vec<(&'static [&'static str], Arc<TokenBucket>)>,
}

impl Budgets {
    /// One budget for everything.
    pub fn single(bucket: Arc<TokenBucket>) -> Self {
        Budgets {
            default: bucket,
            groups: Vec::new(),
        }
    }

    /// `qps`/`burst` for every request, and as much again for each set of API groups in
    /// `separate` (the groups of one upstream clientset share one budget).
    pub fn new(
        qps: f64,
        burst: u32,
        separate: &'static [&'static [&'static str]],
    ) -> Result<Self, Error> {
        let mut budgets = Budgets::single(TokenBucket::new(qps, burst)?);
        for groups in separate {
            budgets.groups.push((groups, TokenBucket::new(qps, burst)?));
        }
        Ok(budgets)
    }

    /// The bucket a request for `path` (`/apis/<group>/<version>/...`, `/api/v1/...`) takes
    /// its token from.
    pub fn bucket_for(&self, path: &str) -> &TokenBucket {
        let group = path
            .strip_prefix("/apis/")
            .and_then(|rest| rest.split('/').next());
        group
            .and_then(|group| {
                self.groups
                    .iter()
                    .find(|(groups, _)| groups.contains(&group))
            })
            .map_or(&self.default, |(_, bucket)| bucket)
    }
}

/// A tower layer that makes every request wait for a token of its [`Budgets`] bucket. The
/// token is taken when the request is made, in the order requests are made (client-go's
/// limiter waits in order too); the wait is in the request's own future, so a request on one
/// budget never waits behind another budget's.
#[derive(Clone, Debug)]
pub struct RateLimitLayer {
    budgets: Arc<Budgets>,
}

impl RateLimitLayer {
    /// The layer for one `bucket`.
    pub fn new(bucket: Arc<TokenBucket>) -> Self {
        Self::with_budgets(Budgets::single(bucket))
    }

    /// The layer for `budgets`.
    pub fn with_budgets(budgets: Budgets) -> Self {
        RateLimitLayer {
            budgets: Arc::new(budgets),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimited {
            inner,
            budgets: self.budgets.clone(),
        }
    }
}

/// The service [`RateLimitLayer`] builds.
#[derive(Debug)]
pub struct RateLimited<S> {
    inner: S,
    budgets: Arc<Budgets>,
}

/// Where a request's bucket is looked up: its path.
pub trait RequestPath {
    /// The request's URI path.
    fn request_path(&self) -> &str;
}

impl<B> RequestPath for http::Request<B> {
    fn request_path(&self) -> &str {
        self.uri().path()
    }
}

impl<S, Req> Service<Req> for RateLimited<S>
where
    S: Service<Req>,
    Req: RequestPath,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Delayed<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let delay = self.budgets.bucket_for(req.request_path()).reserve();
        // kube's stack (retry, auth, hyper) starts sending only when its future is polled.
        let inner = self.inner.call(req);
        Delayed {
            wait: (!delay.is_zero()).then(|| Box::pin(tokio::time::sleep(delay))),
            inner: Box::pin(inner),
        }
    }
}

/// A request's future that first waits for its token.
pub struct Delayed<F> {
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
    inner: Pin<Box<F>>,
}

impl<F> std::fmt::Debug for Delayed<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delayed")
            .field("waiting", &self.wait.is_some())
            .finish_non_exhaustive()
    }
}

impl<F: Future> Future for Delayed<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if let Some(wait) = self.wait.as_mut() {
            ready!(wait.as_mut().poll(cx));
            self.wait = None;
        }
        self.inner.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_starts_full_and_refills_at_qps() {
        let bucket = TokenBucket::new(5.0, 10).unwrap();
        let start = Instant::now();
        for _ in 0..10 {
            assert_eq!(bucket.reserve_at(start), Duration::ZERO);
        }
        // The 11th request waits for one token: 1/5 s.
        assert_eq!(bucket.reserve_at(start), Duration::from_millis(200));
        // The 12th waits for the next one.
        assert_eq!(bucket.reserve_at(start), Duration::from_millis(400));
        // After a quiet second five tokens came back, less the two already promised.
        let later = start + Duration::from_secs(1);
        for _ in 0..3 {
            assert_eq!(bucket.reserve_at(later), Duration::ZERO);
        }
        assert!(bucket.reserve_at(later) > Duration::ZERO);
    }

    #[test]
    fn refill_is_capped_at_burst() {
        let bucket = TokenBucket::new(100.0, 3).unwrap();
        let start = Instant::now();
        let later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(bucket.reserve_at(later), Duration::ZERO);
        }
        assert!(bucket.reserve_at(later) > Duration::ZERO);
    }

    #[test]
    fn zero_qps_means_unlimited_and_bad_values_are_rejected() {
        let bucket = TokenBucket::new(0.0, 0).unwrap();
        for _ in 0..1000 {
            assert_eq!(bucket.reserve(), Duration::ZERO);
        }
        assert!(TokenBucket::new(f64::NAN, 10).is_err());
        assert!(TokenBucket::new(5.0, 0).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn the_layer_spaces_requests_at_qps_after_the_burst() {
        let bucket = TokenBucket::new(2.0, 1).unwrap();
        let service = tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(Instant::now())
        });
        let mut limited = RateLimitLayer::new(bucket).layer(service);
        use tower::ServiceExt as _;
        let get = || http::Request::get("/api/v1/nodes").body(()).unwrap();
        let start = Instant::now();
        limited.ready().await.unwrap().call(get()).await.unwrap();
        assert_eq!(Instant::now() - start, Duration::ZERO);
        limited.ready().await.unwrap().call(get()).await.unwrap();
        limited.ready().await.unwrap().call(get()).await.unwrap();
        // Two waits of half a second each (paused clock: exact).
        assert_eq!(Instant::now() - start, Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn separate_budgets_do_not_wait_for_each_other() {
        const SNAPSHOTS: &[&[&str]] =
            &[&["snapshot.storage.k8s.io", "groupsnapshot.storage.k8s.io"]];
        let budgets = Budgets::new(1.0, 1, SNAPSHOTS).unwrap();
        let service = tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(Instant::now())
        });
        let mut limited = RateLimitLayer::with_budgets(budgets).layer(service);
        use tower::ServiceExt as _;
        let get = |path: &str| http::Request::get(path).body(()).unwrap();
        let start = Instant::now();
        let core = limited
            .ready()
            .await
            .unwrap()
            .call(get("/api/v1/namespaces/a/persistentvolumeclaims/c"));
        let snap = limited
            .ready()
            .await
            .unwrap()
            .call(get("/apis/snapshot.storage.k8s.io/v1/volumesnapshots"));
        let group = limited.ready().await.unwrap().call(get(
            "/apis/groupsnapshot.storage.k8s.io/v1/volumegroupsnapshots",
        ));
        let lease = limited
            .ready()
            .await
            .unwrap()
            .call(get("/apis/coordination.k8s.io/v1/namespaces/a/leases/l"));
        // The first request of each budget goes at once; the second of each waits a second.
        assert_eq!(core.await.unwrap() - start, Duration::ZERO);
        assert_eq!(snap.await.unwrap() - start, Duration::ZERO);
        assert_eq!(group.await.unwrap() - start, Duration::from_secs(1));
        assert_eq!(lease.await.unwrap() - start, Duration::from_secs(1));
    }

    #[test]
    fn a_request_takes_its_token_from_its_group_budget() {
        const SNAPSHOTS: &[&[&str]] = &[&["snapshot.storage.k8s.io"]];
        let budgets = Budgets::new(5.0, 10, SNAPSHOTS).unwrap();
        let snapshots = &*budgets.groups[0].1 as *const TokenBucket;
        let default = &*budgets.default as *const TokenBucket;
        let bucket = |path| budgets.bucket_for(path) as *const TokenBucket;
        assert_eq!(
            bucket("/apis/snapshot.storage.k8s.io/v1/volumesnapshots"),
            snapshots
        );
        assert_eq!(bucket("/apis/snapshot.storage.k8s.io"), snapshots);
        assert_eq!(bucket("/api/v1/events"), default);
        assert_eq!(
            bucket("/apis/snapshot.storage.k8s.io.example/v1/x"),
            default
        );
        assert_eq!(bucket("/apis/storage.k8s.io/v1/volumeattachments"), default);
        assert_eq!(bucket("/version"), default);
    }
}
