//! `pkg/controller/inuse_pvc_store_test.go`: `TestAddRemovePods` (5).

use std::collections::{HashMap, HashSet};

use super::controller::pod_with_claim;
use crate::resize::inuse::{InUseClaims, PodClaims};

fn pod() -> PodClaims {
    let mut pod = pod_with_claim("x");
    pod.spec.volumes.clear();
    pod
}

fn with_claim(claim: &str, mut pod: PodClaims) -> PodClaims {
    pod.spec.volumes.extend(pod_with_claim(claim).spec.volumes);
    pod
}

fn with_uid(uid: &str, mut pod: PodClaims) -> PodClaims {
    pod.metadata.uid = Some(uid.into());
    pod
}

fn with_status(phase: &str, mut pod: PodClaims) -> PodClaims {
    pod.status.phase = Some(phase.into());
    pod
}

#[test]
fn test_add_remove_pods() {
    let cases: Vec<(
        &str,
        Vec<PodClaims>,
        Option<PodClaims>,
        Option<PodClaims>,
        HashMap<String, HashSet<String>>,
    )> = vec![
        (
            "with no initial pods",
            vec![],
            Some(with_claim("no-init-pod", pod())),
            None,
            [(
                "default/no-init-pod".to_string(),
                ["uid1".to_string()].into(),
            )]
            .into(),
        ),
        (
            "adding failed pod",
            vec![],
            Some(with_status("Failed", with_claim("foobar", pod()))),
            None,
            HashMap::new(),
        ),
        (
            "with success pod",
            vec![],
            Some(with_status("Succeeded", with_claim("foobar", pod()))),
            None,
            HashMap::new(),
        ),
        (
            "removing running pod",
            vec![with_uid("foobar-pod", pod())],
            None,
            Some(with_uid("foobar-pod", pod())),
            HashMap::new(),
        ),
        (
            "removing failed pod",
            vec![with_uid("foobar-pod", pod())],
            None,
            Some(with_status("Failed", with_uid("foobar-pod", pod()))),
            HashMap::new(),
        ),
    ];
    for (name, initial, add, remove, expected) in cases {
        let store = InUseClaims::new();
        for pod in &initial {
            store.add_pod(pod);
        }
        if let Some(pod) = &add {
            store.add_pod(pod);
        }
        if let Some(pod) = &remove {
            store.remove_pod(pod);
        }
        assert_eq!(store.snapshot(), expected, "{name}");
    }
}
