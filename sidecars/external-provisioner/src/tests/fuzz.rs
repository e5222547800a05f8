//! Property tests of provisioning with arbitrary input on both sides: StorageClass parameters
//! (secret templates, reserved keys, fstype), the claim's requested size (any quantity string),
//! access modes and volume mode, and whatever the driver answers to CreateVolume (no volume,
//! any capacity including negative and i64::MAX, any ID, volume context, content source and
//! topology segments, or any gRPC status). `provision` must return a PV or an error, never
//! panic; a PV carries what the driver said; a volume smaller than asked is deleted again.

use std::collections::{BTreeMap, HashMap};

use csi_connection::CsiError;
use csi_proto::csi::v1::{CreateVolumeResponse, Topology, Volume, VolumeContentSource};
use csi_test_support::Secrets;
use csi_test_support::fuzz::config as fuzz_config;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use proptest::prelude::*;
use tonic::{Code, Status};

use super::controller_test::{FakeDriver, config, fake_pvc, provision_capabilities, storage_class};
use crate::provision::{DataSourceObjects, ProvisionOptions, provision};
use crate::topology::{ClusterTopology, TopologyMemo, volume_node_affinity};

fn param_key() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(
            &[
                "csi.storage.k8s.io/fstype",
                "fstype",
                "FSType",
                "csi.storage.k8s.io/provisioner-secret-name",
                "csi.storage.k8s.io/provisioner-secret-namespace",
                "csi.storage.k8s.io/controller-publish-secret-name",
                "csi.storage.k8s.io/controller-publish-secret-namespace",
                "csi.storage.k8s.io/node-stage-secret-name",
                "csi.storage.k8s.io/node-stage-secret-namespace",
                "csi.storage.k8s.io/controller-modify-secret-name",
                "csi.storage.k8s.io/controller-modify-secret-namespace",
                "csi.storage.k8s.io/secret-name",
                "csi.storage.k8s.io/secret-namespace",
                "csiProvisionerSecretName",
                "csiProvisionerSecretNamespace",
            ][..]
        )
        .prop_map(str::to_string),
        "csi\\.storage\\.k8s\\.io/[a-z-]{0,10}",
        "[a-zA-Z]{1,8}",
        any::<String>(),
    ]
}

fn param_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9-]{0,10}",
        "\\$\\{(pv\\.name|pvc\\.name|pvc\\.namespace|pvc\\.annotations\\['a'\\])\\}",
        any::<String>(),
    ]
}

fn quantity() -> impl Strategy<Value = String> {
    prop_oneof![
        (0i64..1 << 40).prop_map(|n| n.to_string()),
        "[0-9]{1,4}(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E|m|)",
        "[-+]?[0-9]{0,30}(\\.[0-9]{0,10})?([eE][-+]?[0-9]{1,3}|Ki|Ei|m|n|u)?",
        any::<String>(),
    ]
}

fn response() -> impl Strategy<Value = Result<CreateVolumeResponse, CsiError>> {
    let volume = (
        prop_oneof![
            any::<i64>(),
            0i64..1000,
            Just(0i64),
            Just(i64::MAX),
            Just(i64::MIN)
        ],
        any::<String>(),
        proptest::collection::hash_map(any::<String>(), any::<String>(), 0..3),
        any::<bool>(),
        proptest::collection::vec(
            proptest::collection::hash_map(any::<String>(), any::<String>(), 0..3),
            0..3,
        ),
    )
        .prop_map(
            |(capacity_bytes, volume_id, volume_context, source, topology)| Volume {
                capacity_bytes,
                volume_id,
                volume_context,
                content_source: source.then(VolumeContentSource::default),
                accessible_topology: topology
                    .into_iter()
                    .map(|segments| Topology { segments })
                    .collect(),
            },
        );
    prop_oneof![
        4 => proptest::option::of(volume).prop_map(|volume| Ok(CreateVolumeResponse { volume })),
        1 => (0i32..17, any::<String>())
            .prop_map(|(code, message)| Err(CsiError::Status(Status::new(Code::from(code), message)))),
    ]
}

#[derive(Debug, Clone)]
struct Input {
    params: BTreeMap<String, String>,
    size: String,
    access_modes: Vec<String>,
    volume_mode: Option<String>,
    answer: Result<CreateVolumeResponse, CsiError>,
}

fn input() -> impl Strategy<Value = Input> {
    (
        proptest::collection::btree_map(param_key(), param_value(), 0..4),
        quantity(),
        proptest::collection::vec(
            prop_oneof![
                Just("ReadWriteOnce".to_string()),
                Just("ReadOnlyMany".to_string()),
                Just("ReadWriteMany".to_string()),
                Just("ReadWriteOncePod".to_string()),
                any::<String>(),
            ],
            0..3,
        ),
        proptest::option::of(prop_oneof![
            Just("Block".to_string()),
            Just("Filesystem".to_string()),
            any::<String>(),
        ]),
        response(),
    )
        .prop_map(|(params, size, access_modes, volume_mode, answer)| Input {
            params,
            size,
            access_modes,
            volume_mode,
            answer,
        })
}

proptest! {
    #![proptest_config(fuzz_config(96))]

    #[test]
    fn provisioning_with_any_class_claim_and_answer_never_panics(input in input()) {
        let mut claim = fake_pvc();
        let spec = claim.spec.as_mut().expect("a spec");
        spec.resources.as_mut().expect("resources").requests =
            Some(BTreeMap::from([("storage".to_string(), Quantity(input.size.clone()))]));
        spec.access_modes = Some(input.access_modes.clone());
        spec.volume_mode = input.volume_mode.clone();
        let pairs: Vec<(&str, &str)> =
            input.params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let class = storage_class(&pairs);
        let options = ProvisionOptions {
            claim: &claim,
            storage_class: &class,
            selected_node: "",
            volume_attributes_class: None,
            data_source: DataSourceObjects::None,
            cluster: ClusterTopology::default(),
        };
        let driver = FakeDriver::new(input.answer.clone());
        let secrets = Secrets::default();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let result = runtime.block_on(provision(
            &config(provision_capabilities()),
            &options,
            &driver,
            &secrets,
            &mut TopologyMemo::new(),
        ));
        let created = driver.created.lock().expect("lock").len();
        let deleted = driver.deleted.lock().expect("lock").clone();
        match result {
            Ok(pv) => {
                prop_assert_eq!(created, 1);
                prop_assert!(deleted.is_empty());
                let volume = input
                    .answer
                    .as_ref()
                    .ok()
                    .and_then(|r| r.volume.clone())
                    .unwrap_or_default();
                let spec = pv.spec.expect("a PV spec");
                let csi = spec.csi.expect("a CSI source");
                prop_assert_eq!(&csi.volume_handle, &volume.volume_id);
                let attributes: HashMap<String, String> =
                    csi.volume_attributes.unwrap_or_default().into_iter().collect();
                for (k, v) in &volume.volume_context {
                    prop_assert_eq!(attributes.get(k), Some(v));
                }
                prop_assert!(spec.capacity.is_some_and(|c| c.contains_key("storage")));
                // The API server refuses negative requests; for any other, a driver's negative
                // capacity is smaller than asked and refused.
                if crate::params::requested_bytes(&claim) >= 0 {
                    prop_assert!(volume.capacity_bytes >= 0, "a PV of {} bytes", volume.capacity_bytes);
                }
            }
            Err(err) => {
                prop_assert!(!err.to_string().is_empty());
                // A volume the driver created but that cannot be used is deleted again.
                if input.answer.is_err() {
                    prop_assert!(deleted.is_empty());
                }
            }
        }
    }

    #[test]
    fn any_accessible_topology_gives_one_term_per_topology(
        topology in proptest::collection::vec(
            proptest::collection::hash_map(any::<String>(), any::<String>(), 0..4),
            0..4,
        ),
    ) {
        let topology: Vec<Topology> =
            topology.into_iter().map(|segments| Topology { segments }).collect();
        match volume_node_affinity(&topology) {
            None => prop_assert!(topology.is_empty()),
            Some(affinity) => {
                let terms = affinity.required.expect("required").node_selector_terms;
                let non_empty: Vec<&Topology> =
                    topology.iter().filter(|t| !t.segments.is_empty()).collect();
                prop_assert_eq!(terms.len(), non_empty.len());
                for (term, t) in terms.iter().zip(non_empty) {
                    let requirements = term.match_expressions.clone().unwrap_or_default();
                    prop_assert_eq!(requirements.len(), t.segments.len());
                    for r in requirements {
                        prop_assert_eq!(r.operator.as_str(), "In");
                        prop_assert_eq!(r.values, Some(vec![t.segments[&r.key].clone()]));
                    }
                }
            }
        }
    }
}
