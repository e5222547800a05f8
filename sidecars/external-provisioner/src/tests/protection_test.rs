//! Ports of upstream's `clone_controller_test.go` (`TestCloneFinalizerRemoval`, 6 cases;
//! `TestEnqueueClaimUpadate`, 2), `snapshot_finalizer_controller_test.go` (the sweep tests,
//! `TestIsSnapshotSourcePVC` with its 6 cases, `TestSnapshotNameFromPVC_CrossNamespace`, and
//! the two `TestNewSnapshotFinalizerController_*` cases as the conditions of
//! [`SnapshotFinalizerSweep::declare`], against a small API server) and `util_test.go`
//! (`TestIsGranted`, 23 cases), over the fake API of `csi-test-support`: its cache is the
//! listers, its server the client.

use std::sync::Arc;
use std::time::Duration;

use csi_controller::ApiError;
use csi_crd_types::gateway::v1beta1::{ReferenceGrantFrom, ReferenceGrantTo};
use csi_crd_types::{ReferenceGrant, VolumeSnapshot, VolumeSnapshotContent};
use csi_test_support::fake_api::{FakeApi, PatchType};
use csi_workqueue::{ItemExponentialFailureRateLimiter, WorkQueue};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PersistentVolumeClaimStatus, TypedLocalObjectReference, TypedObjectReference,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::snapshot_test::reference_grant;
use crate::clone_protection::*;
use crate::data_source::*;
use crate::snapshot_protection::*;

/// [`DataSourceClient`], [`DataSourceListers`] and [`CloneLister`] over a [`FakeApi`].
#[derive(Debug, Clone, Default)]
struct Fake(FakeApi);

impl DataSourceClient for Fake {
    fn volume_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(async move { self.0.get(namespace, name) })
    }

    fn volume_snapshot_content<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<VolumeSnapshotContent, ApiError>> {
        Box::pin(async move { self.0.get("", name) })
    }

    fn persistent_volume<'a>(
        &'a self,
        name: &'a str,
    ) -> BoxFuture<'a, Result<PersistentVolume, ApiError>> {
        Box::pin(async move { self.0.get("", name) })
    }

    fn patch_claim<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        json_patch: &'a Value,
    ) -> BoxFuture<'a, Result<PersistentVolumeClaim, ApiError>> {
        Box::pin(async move {
            self.0
                .patch(namespace, name, "", PatchType::Json, json_patch)
        })
    }

    fn patch_volume_snapshot<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        json_patch: &'a Value,
    ) -> BoxFuture<'a, Result<VolumeSnapshot, ApiError>> {
        Box::pin(async move {
            self.0
                .patch(namespace, name, "", PatchType::Json, json_patch)
        })
    }
}

impl DataSourceListers for Fake {
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.0.cached(namespace, name).map(Arc::new)
    }

    fn reference_grants(&self, namespace: &str) -> Result<Vec<Arc<ReferenceGrant>>, ApiError> {
        Ok(self
            .0
            .cached_list::<ReferenceGrant>()
            .into_iter()
            .filter(|g| g.metadata.namespace.as_deref() == Some(namespace))
            .map(Arc::new)
            .collect())
    }
}

impl CloneLister for Fake {
    fn claim(&self, namespace: &str, name: &str) -> Option<Arc<PersistentVolumeClaim>> {
        self.0.cached(namespace, name).map(Arc::new)
    }

    fn clones_of(&self, namespace: &str, name: &str) -> Vec<Arc<PersistentVolumeClaim>> {
        let key = format!("{namespace}/{name}");
        self.0
            .cached_list::<PersistentVolumeClaim>()
            .into_iter()
            .filter(|c| clone_source_key(c).contains(&key))
            .map(Arc::new)
            .collect()
    }
}

const SRC_NAME: &str = "clone-source-pvc";
const DST_NAME: &str = "destination-pvc";
const SRC_NAMESPACE: &str = "fake-pvc-namespace";

/// Upstream's `baseClaim`: a Bound claim of 1000 bytes.
fn base_claim() -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(SRC_NAME.into()),
            namespace: Some(SRC_NAMESPACE.into()),
            uid: Some("fake-claim-uid".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            volume_name: Some("test-testi".into()),
            storage_class_name: Some("fake-sc-1".into()),
            ..Default::default()
        }),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some("Bound".into()),
            ..Default::default()
        }),
    }
}

fn with_finalizer(mut claim: PersistentVolumeClaim) -> PersistentVolumeClaim {
    claim
        .metadata
        .finalizers
        .get_or_insert_default()
        .push(CLONE_FINALIZER.into());
    claim
}

fn clone_of(source: &str, mut claim: PersistentVolumeClaim) -> PersistentVolumeClaim {
    claim.spec.get_or_insert_default().data_source = Some(TypedLocalObjectReference {
        api_group: Some(String::new()),
        kind: "PersistentVolumeClaim".into(),
        name: source.into(),
    });
    claim
}

fn named(name: &str, mut claim: PersistentVolumeClaim) -> PersistentVolumeClaim {
    claim.metadata.name = Some(name.into());
    claim
}

fn namespaced(namespace: &str, mut claim: PersistentVolumeClaim) -> PersistentVolumeClaim {
    claim.metadata.namespace = Some(namespace.into());
    claim
}

fn phase(phase: &str, mut claim: PersistentVolumeClaim) -> PersistentVolumeClaim {
    claim.status.get_or_insert_default().phase = Some(phase.into());
    claim
}

fn deletion_marked(mut claim: PersistentVolumeClaim) -> PersistentVolumeClaim {
    claim.metadata.deletion_timestamp = Some(Time(Default::default()));
    claim
}

#[tokio::test]
async fn test_clone_finalizer_removal() {
    struct Case {
        name: &'static str,
        initial_claims: Vec<PersistentVolumeClaim>,
        clone_source: PersistentVolumeClaim,
        expect_finalizer: bool,
        expect_error: Option<String>,
    }
    let pending = |msg: &str| {
        Some(format!(
            "PVC '{msg}' is in 'Pending' state, cloning in progress"
        ))
    };
    let cases = vec![
        Case {
            name: "delete source pvc with no cloning in progress",
            clone_source: with_finalizer(base_claim()),
            initial_claims: vec![clone_of(SRC_NAME, named(DST_NAME, base_claim()))],
            expect_finalizer: false,
            expect_error: None,
        },
        Case {
            name: "delete source pvc when destination pvc status is claim pending",
            clone_source: with_finalizer(base_claim()),
            initial_claims: vec![phase(
                "Pending",
                clone_of(SRC_NAME, named(DST_NAME, base_claim())),
            )],
            expect_finalizer: true,
            expect_error: pending(DST_NAME),
        },
        Case {
            name: "delete source pvc when at least one destination pvc status is claim pending",
            clone_source: with_finalizer(base_claim()),
            initial_claims: vec![
                clone_of(SRC_NAME, named(DST_NAME, base_claim())),
                phase(
                    "Pending",
                    clone_of(SRC_NAME, named(&format!("{DST_NAME}1"), base_claim())),
                ),
            ],
            expect_finalizer: true,
            expect_error: pending(&format!("{DST_NAME}1")),
        },
        Case {
            name: "delete source pvc located in another namespace should not block",
            clone_source: namespaced(&format!("{SRC_NAMESPACE}1"), with_finalizer(base_claim())),
            initial_claims: vec![phase(
                "Pending",
                clone_of(SRC_NAME, named(&format!("{DST_NAME}1"), base_claim())),
            )],
            expect_finalizer: false,
            expect_error: None,
        },
        Case {
            name: "delete source pvc which is not cloned by any other pvc",
            clone_source: with_finalizer(base_claim()),
            initial_claims: vec![],
            expect_finalizer: false,
            expect_error: None,
        },
        Case {
            name: "delete source pvc without finalizer",
            clone_source: base_claim(),
            initial_claims: vec![],
            expect_finalizer: false,
            expect_error: None,
        },
    ];
    for case in cases {
        let name = case.name;
        let fake = Fake::default();
        for claim in &case.initial_claims {
            fake.0.add(claim);
        }
        fake.0.add(&case.clone_source);
        let claim = deletion_marked(case.clone_source.clone());
        let result = sync_claim(&fake, &fake, &claim).await;
        let namespace = claim.metadata.namespace.as_deref().unwrap();
        let stored: PersistentVolumeClaim = fake.0.server_object(namespace, SRC_NAME).unwrap();
        let has = stored
            .metadata
            .finalizers
            .unwrap_or_default()
            .iter()
            .any(|f| f == CLONE_FINALIZER);
        assert_eq!(has, case.expect_finalizer, "{name}: finalizer");
        assert_eq!(
            result.err().map(|e| e.to_string()),
            case.expect_error,
            "{name}: error"
        );
    }
}

#[tokio::test]
async fn test_enqueue_claim_upadate() {
    for (name, claim, queue_len) in [
        (
            "enqueue claim with deletionTimestamp",
            deletion_marked(base_claim()),
            1,
        ),
        ("enqueue claim without deletionTimestamp", base_claim(), 0),
    ] {
        let queue = WorkQueue::<String>::new(ItemExponentialFailureRateLimiter::new(
            Duration::from_secs(1),
            Duration::from_secs(2),
        ));
        enqueue(&queue, &claim);
        assert_eq!(queue.len(), queue_len, "{name}");
        if queue_len == 1 {
            assert_eq!(
                queue.get().await.as_deref(),
                Some("fake-pvc-namespace/clone-source-pvc")
            );
        }
    }
}

#[tokio::test]
async fn the_clone_finalizer_is_added_from_the_cache_copy() {
    let fake = Fake::default();
    fake.0.add(&base_claim());
    let sources = DataSources::new(
        DataSourceConfig::default(),
        Arc::new(fake.clone()),
        Arc::new(fake.clone()),
    );
    let reference = DataSourceRef {
        kind: "PersistentVolumeClaim".into(),
        name: SRC_NAME.into(),
        api_group: String::new(),
        namespace: SRC_NAMESPACE.into(),
    };
    sources.add_finalizer(&reference).await.unwrap();
    let stored: PersistentVolumeClaim = fake.0.server_object(SRC_NAMESPACE, SRC_NAME).unwrap();
    assert_eq!(
        stored.metadata.finalizers,
        Some(vec![CLONE_FINALIZER.to_string()])
    );

    // A source missing from the cache fails with the lister's message.
    let missing = DataSourceRef {
        name: "gone".into(),
        ..reference
    };
    assert_eq!(
        sources
            .add_finalizer(&missing)
            .await
            .unwrap_err()
            .to_string(),
        "persistentvolumeclaim \"gone\" not found"
    );
}

const SNAPSHOT_GROUP: &str = "snapshot.storage.k8s.io";

fn snapshot(name: &str, finalizers: &[&str]) -> VolumeSnapshot {
    VolumeSnapshot {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            finalizers: Some(finalizers.iter().map(|f| f.to_string()).collect()),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn restore_claim(
    name: &str,
    snapshot: &str,
    claim_phase: &str,
    by_ref: bool,
) -> PersistentVolumeClaim {
    let mut spec = PersistentVolumeClaimSpec::default();
    if by_ref {
        spec.data_source_ref = Some(TypedObjectReference {
            api_group: Some(SNAPSHOT_GROUP.into()),
            kind: "VolumeSnapshot".into(),
            name: snapshot.into(),
            namespace: None,
        });
    } else {
        spec.data_source = Some(TypedLocalObjectReference {
            api_group: None,
            kind: "VolumeSnapshot".into(),
            name: snapshot.into(),
        });
    }
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        spec: Some(spec),
        status: Some(PersistentVolumeClaimStatus {
            phase: Some(claim_phase.into()),
            ..Default::default()
        }),
    }
}

/// Runs one sweep over `snapshots` and `claims` and returns the finalizers each snapshot has
/// on the server afterwards.
async fn sweep_once(
    snapshots: Vec<VolumeSnapshot>,
    claims: Vec<PersistentVolumeClaim>,
) -> Vec<Vec<String>> {
    let fake = Fake::default();
    for s in &snapshots {
        fake.0.add(s);
    }
    let snapshots: Vec<_> = snapshots.into_iter().map(Arc::new).collect();
    let claims: Vec<_> = claims.into_iter().map(Arc::new).collect();
    sweep(&snapshots, &claims, &fake, &CancellationToken::new()).await;
    snapshots
        .iter()
        .map(|s| {
            let stored: VolumeSnapshot = fake
                .0
                .server_object("default", s.metadata.name.as_deref().unwrap())
                .unwrap();
            stored.metadata.finalizers.unwrap_or_default()
        })
        .collect()
}

const BOUND_PROTECTION: &str = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection";

#[tokio::test]
async fn test_sync_snapshot_remove_finalizer_when_no_pending_pvc() {
    let after = sweep_once(
        vec![snapshot(
            "test-snapshot",
            &[BOUND_PROTECTION, SNAPSHOT_SOURCE_FINALIZER],
        )],
        vec![restore_claim(
            "restored-pvc",
            "test-snapshot",
            "Bound",
            false,
        )],
    )
    .await;
    assert_eq!(after, [vec![BOUND_PROTECTION.to_string()]]);
}

#[tokio::test]
async fn test_sync_snapshot_keep_finalizer_when_pvc_pending() {
    let after = sweep_once(
        vec![snapshot("test-snapshot", &[SNAPSHOT_SOURCE_FINALIZER])],
        vec![restore_claim(
            "pending-pvc",
            "test-snapshot",
            "Pending",
            false,
        )],
    )
    .await;
    assert_eq!(after, [vec![SNAPSHOT_SOURCE_FINALIZER.to_string()]]);
}

#[tokio::test]
async fn test_sync_snapshot_remove_finalizer_when_no_pvc_exists() {
    let after = sweep_once(
        vec![snapshot("test-snapshot", &[SNAPSHOT_SOURCE_FINALIZER])],
        vec![],
    )
    .await;
    assert_eq!(after, [Vec::<String>::new()]);
}

#[tokio::test]
async fn test_sync_snapshot_multiple_pvcs() {
    let after = sweep_once(
        vec![snapshot("test-snapshot", &[SNAPSHOT_SOURCE_FINALIZER])],
        vec![
            restore_claim("bound-pvc", "test-snapshot", "Bound", false),
            restore_claim("pending-pvc", "test-snapshot", "Pending", false),
        ],
    )
    .await;
    assert_eq!(after, [vec![SNAPSHOT_SOURCE_FINALIZER.to_string()]]);
}

#[tokio::test]
async fn test_sweep_orphaned_finalizers() {
    let after = sweep_once(
        vec![
            snapshot("orphan-snap", &[SNAPSHOT_SOURCE_FINALIZER]),
            snapshot("clean-snap", &["other-finalizer"]),
        ],
        vec![],
    )
    .await;
    assert_eq!(after, [vec![], vec!["other-finalizer".to_string()]]);
}

#[tokio::test]
async fn test_sweep_orphaned_finalizers_retains_pending_pvc() {
    let after = sweep_once(
        vec![snapshot("active-snap", &[SNAPSHOT_SOURCE_FINALIZER])],
        vec![restore_claim(
            "still-provisioning",
            "active-snap",
            "Pending",
            false,
        )],
    )
    .await;
    assert_eq!(after, [vec![SNAPSHOT_SOURCE_FINALIZER.to_string()]]);
}

#[tokio::test]
async fn test_sync_snapshot_data_source_ref_pending() {
    let after = sweep_once(
        vec![snapshot("test-snapshot", &[SNAPSHOT_SOURCE_FINALIZER])],
        vec![restore_claim(
            "pending-pvc",
            "test-snapshot",
            "Pending",
            true,
        )],
    )
    .await;
    assert_eq!(after, [vec![SNAPSHOT_SOURCE_FINALIZER.to_string()]]);
}

#[test]
fn test_is_snapshot_source_pvc() {
    let with =
        |data_source: Option<TypedLocalObjectReference>,
         data_source_ref: Option<TypedObjectReference>| PersistentVolumeClaim {
            spec: Some(PersistentVolumeClaimSpec {
                data_source,
                data_source_ref,
                ..Default::default()
            }),
            ..Default::default()
        };
    let local = |kind: &str, group: Option<&str>| TypedLocalObjectReference {
        api_group: group.map(str::to_string),
        kind: kind.into(),
        name: "snap".into(),
    };
    let typed = |kind: &str, group: Option<&str>| TypedObjectReference {
        api_group: group.map(str::to_string),
        kind: kind.into(),
        name: "snap".into(),
        namespace: None,
    };
    let cases = [
        (
            "DataSource with snapshot kind",
            with(Some(local("VolumeSnapshot", Some(SNAPSHOT_GROUP))), None),
            true,
        ),
        (
            "DataSourceRef with snapshot kind",
            with(None, Some(typed("VolumeSnapshot", Some(SNAPSHOT_GROUP)))),
            true,
        ),
        (
            "DataSource with PVC kind",
            with(Some(local("PersistentVolumeClaim", None)), None),
            false,
        ),
        ("No data source", with(None, None), false),
        (
            "DataSource with wrong APIGroup is not a snapshot",
            with(Some(local("VolumeSnapshot", Some("wrong.group.io"))), None),
            false,
        ),
        (
            "DataSourceRef with wrong APIGroup is not a snapshot",
            with(None, Some(typed("VolumeSnapshot", Some("wrong.group.io")))),
            false,
        ),
    ];
    for (name, claim, expect) in cases {
        assert_eq!(is_snapshot_source_claim(&claim), expect, "{name}");
    }
}

#[test]
fn test_snapshot_name_from_pvc_cross_namespace() {
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("pvc1".into()),
            namespace: Some("local-ns".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            data_source_ref: Some(TypedObjectReference {
                api_group: Some(SNAPSHOT_GROUP.into()),
                kind: "VolumeSnapshot".into(),
                name: "remote-snapshot".into(),
                namespace: Some("other-namespace".into()),
            }),
            ..Default::default()
        }),
        status: None,
    };
    assert_eq!(
        snapshot_of_claim(&claim),
        Some(("other-namespace".to_string(), "remote-snapshot".to_string()))
    );
}

#[test]
fn test_is_granted() {
    const DATA_SOURCE_NAME: &str = "test-dataSource";
    const SNAP_KIND: &str = "VolumeSnapshot";
    const ANY_GROUP: &str = "hello.k8s.io/v1alpha1";
    const ANY_KIND: &str = "Hello";
    #[derive(Clone)]
    struct Case {
        name: &'static str,
        expect_err: bool,
        source: TypedObjectReference,
        grant_namespace: &'static str,
        from: Vec<ReferenceGrantFrom>,
        to: Vec<ReferenceGrantTo>,
        without_grants: bool,
    }
    let base = |name: &'static str| Case {
        name,
        expect_err: false,
        source: TypedObjectReference {
            api_group: Some(String::new()),
            kind: "PersistentVolumeClaim".into(),
            name: DATA_SOURCE_NAME.into(),
            namespace: Some("ns1".into()),
        },
        grant_namespace: "ns1",
        from: vec![ReferenceGrantFrom {
            group: String::new(),
            kind: "PersistentVolumeClaim".into(),
            namespace: "ns2".into(),
        }],
        to: vec![ReferenceGrantTo {
            group: String::new(),
            kind: "PersistentVolumeClaim".into(),
            name: None,
        }],
        without_grants: false,
    };
    let denied = |name| Case {
        expect_err: true,
        ..base(name)
    };
    let snapshot_source = |mut case: Case| {
        case.source.api_group = Some(SNAPSHOT_GROUP.into());
        case.source.kind = SNAP_KIND.into();
        case
    };
    let snapshot_to = |mut case: Case| {
        case.to[0].group = SNAPSHOT_GROUP.into();
        case.to[0].kind = SNAP_KIND.into();
        case
    };
    let any_source = |mut case: Case| {
        case.source.api_group = Some(ANY_GROUP.into());
        case.source.kind = ANY_KIND.into();
        case
    };
    let mut cases = vec![base(
        "Allowed to access dataSource for xns PVC with refGrant",
    )];
    let mut c = base("Allowed to access dataSource for xns PVC with refGrant of specify toName");
    c.to[0].name = Some(DATA_SOURCE_NAME.into());
    cases.push(c);
    let mut c = base("Allowed to access dataSource of apiGroup nil for xns PVC with refGrant");
    c.source.api_group = None;
    cases.push(c);
    cases.push(base(
        "Allowed to access dataSource for xns PVC with refGrant of specify toName of nil",
    ));
    let mut c =
        base("Allowed to access dataSource for xns PVC with refGrant of specify toName of non");
    c.to[0].name = Some(String::new());
    cases.push(c);
    cases.push(snapshot_to(snapshot_source(base(
        "Allowed to access dataSource for xns Snapshot with refGrant",
    ))));
    let mut c = any_source(base(
        "Allowed to access dataSource for xns AnyVolumeDataSource with refGrant",
    ));
    c.to[0].group = ANY_GROUP.into();
    c.to[0].kind = ANY_KIND.into();
    cases.push(c);
    cases.push(Case {
        without_grants: true,
        ..denied("Not allowed to access dataSource for xns PVC without refGrant")
    });
    cases.push(Case {
        without_grants: true,
        ..snapshot_source(denied(
            "Not allowed to access dataSource for xns Snapshot without refGrant",
        ))
    });
    cases.push(Case {
        without_grants: true,
        ..any_source(denied(
            "Not allowed to access dataSource for xns AnyVolumeDataSource without refGrant",
        ))
    });
    cases.push(Case {
        grant_namespace: "wrong-reference-namespace",
        ..denied(
            "Not allowed to access dataSource for xns PVC with refGrant of wrong create namespace",
        )
    });
    let mut c =
        denied("Not allowed to access dataSource for xns PVC with refGrant of wrong fromGroup");
    c.from[0].group = "wrong.fromGroup".into();
    cases.push(c);
    let mut c =
        denied("Not allowed to access dataSource for xns PVC with refGrant of wrong fromKind");
    c.from[0].group = "wrongfromKind".into();
    cases.push(c);
    let mut c =
        denied("Not allowed to access dataSource for xns PVC with refGrant of wrong fromNamespace");
    c.from[0].namespace = "wrong-fromNamespace".into();
    cases.push(c);
    let mut c =
        denied("Not allowed to access dataSource for xns PVC with refGrant of wrong toGroup");
    c.to[0].group = "wrong.toGroup".into();
    cases.push(c);
    let mut c =
        denied("Not allowed to access dataSource for xns PVC with refGrant of wrong toKind");
    c.to[0].kind = "WrongtoKind".into();
    cases.push(c);
    let mut c =
        denied("Not allowed to access dataSource for xns PVC with refGrant of wrong toName");
    c.to[0].name = Some("wrong-dataSource-name".into());
    cases.push(c);
    cases.push(snapshot_to(denied(
        "Not allowed to access PVC dataSource for xns PVC with refGrant of SnapShot dataSource",
    )));
    let mut c = snapshot_to(denied(
        "Not allowed to access Snapshot dataSource of apiGroup nil for xns Snapshot with refGrant",
    ));
    c.source.api_group = None;
    c.source.kind = SNAP_KIND.into();
    cases.push(c);
    cases.push(snapshot_source(denied(
        "Not allowed to access Snapshot dataSource for xns PVC with refGrant of PVC dataSource",
    )));
    cases.push(Case {
        from: vec![],
        ..denied("Not allowed to access dataSource for xns PVC with refGrant of referenceGrantFrom empty")
    });
    cases.push(Case {
        to: vec![],
        ..denied(
            "Not allowed to access dataSource for xns PVC with refGrant of referenceGrantTo empty",
        )
    });
    cases.push(Case {
        from: vec![],
        to: vec![],
        ..denied("Not allowed to access dataSource for xns PVC with refGrant of referenceGrantFrom and referenceGrantTo empty")
    });
    assert_eq!(cases.len(), 23);
    for case in cases {
        let grants: Vec<Arc<ReferenceGrant>> = if case.without_grants {
            vec![]
        } else {
            vec![Arc::new(reference_grant(
                case.grant_namespace,
                case.from.clone(),
                case.to.clone(),
            ))]
        };
        let claim = PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("test-pvc".into()),
                namespace: Some("ns2".into()),
                uid: Some("testid".into()),
                ..Default::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                data_source_ref: Some(case.source.clone()),
                ..Default::default()
            }),
            status: None,
        };
        let result = is_granted(&claim, &grants);
        assert_eq!(
            result.is_err(),
            case.expect_err,
            "{}: {result:?}",
            case.name
        );
    }
    // The message is upstream's.
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("test-pvc".into()),
            namespace: Some("ns2".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            data_source_ref: Some(base("x").source),
            ..Default::default()
        }),
        status: None,
    };
    assert_eq!(
        is_granted(&claim, &[]).unwrap_err().to_string(),
        "accessing ns1/test-dataSource of PersistentVolumeClaim dataSource from ns2/test-pvc isn't allowed"
    );
}

/// An API server for [`SnapshotFinalizerSweep::declare`]: discovery of
/// `snapshot.storage.k8s.io/v1` (with VolumeSnapshots when `served`, else 404) and an empty
/// VolumeSnapshot list. Records every request path.
fn snapshot_api_server(served: bool, requests: Arc<std::sync::Mutex<Vec<String>>>) -> kube::Client {
    use kube::client::Body;
    let service = tower::service_fn(move |request: http::Request<Body>| {
        let path = request.uri().path().to_string();
        requests.lock().unwrap().push(path.clone());
        let (status, body) = match path.as_str() {
            "/apis/snapshot.storage.k8s.io/v1" if served => (
                200,
                serde_json::json!({
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": "snapshot.storage.k8s.io/v1",
                    "resources": [{
                        "name": "volumesnapshots",
                        "singularName": "volumesnapshot",
                        "namespaced": true,
                        "kind": "VolumeSnapshot",
                        "verbs": ["get", "list", "watch", "update"],
                    }],
                }),
            ),
            "/apis/snapshot.storage.k8s.io/v1/volumesnapshots" if served => (
                200,
                serde_json::json!({
                    "apiVersion": "meta.k8s.io/v1",
                    "kind": "PartialObjectMetadataList",
                    "metadata": {},
                    "items": [],
                }),
            ),
            _ => (
                404,
                serde_json::json!({
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "NotFound",
                    "code": 404,
                    "message": "the server could not find the requested resource",
                }),
            ),
        };
        let response = http::Response::builder()
            .status(status)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
        async move { Ok::<_, std::convert::Infallible>(response) }
    });
    kube::Client::new(service, "default")
}

async fn declare_sweep(served: bool, create_delete_snapshot: bool) -> (bool, Vec<String>) {
    let requests = Arc::new(std::sync::Mutex::new(Vec::new()));
    let client = snapshot_api_server(served, requests.clone());
    let caches = csi_kube::Caches::new(client.clone());
    let sweep = SnapshotFinalizerSweep::declare(
        &caches,
        &client,
        create_delete_snapshot,
        Duration::from_secs(300),
        Arc::new(super::snapshot_test::SnapshotApi::default()),
    )
    .await
    .unwrap();
    let requests = requests.lock().unwrap().clone();
    (sweep.is_some(), requests)
}

/// Upstream's `TestNewSnapshotFinalizerController_NilSnapshotClient`: without a snapshot
/// client there is no controller. Here the client is always there; what stands for "no
/// snapshot client" is an API server that does not serve VolumeSnapshots.
#[tokio::test]
async fn test_new_snapshot_finalizer_controller_nil_snapshot_client() {
    let (declared, requests) = declare_sweep(false, true).await;
    assert!(!declared);
    assert_eq!(requests, ["/apis/snapshot.storage.k8s.io/v1"]);
    // With VolumeSnapshots served, the sweep is declared.
    assert!(declare_sweep(true, true).await.0);
}

/// Upstream's `TestNewSnapshotFinalizerController_NoSnapshotCapability`: a driver without
/// `CREATE_DELETE_SNAPSHOT` gets no sweep, even with VolumeSnapshots served, and nothing is
/// asked of the API server.
#[tokio::test]
async fn test_new_snapshot_finalizer_controller_no_snapshot_capability() {
    let (declared, requests) = declare_sweep(true, false).await;
    assert!(!declared);
    assert!(requests.is_empty(), "{requests:?}");
}
