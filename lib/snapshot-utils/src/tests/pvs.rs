use k8s_openapi::api::core::v1::{
    CSIPersistentVolumeSource, HostPathVolumeSource, PersistentVolume, PersistentVolumeSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::persistent_volume_key;

// TestPersistentVolumeKeyFunc
#[test]
fn persistent_volume_key_func() {
    let csi_pv = PersistentVolume {
        metadata: ObjectMeta {
            name: Some("pv-name".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            csi: Some(CSIPersistentVolumeSource {
                driver: "hostpath.csi.k8s.io".into(),
                volume_handle: "df39ea9e-1296-11ef-adde-baf37ed30dae".into(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let host_path_pv = PersistentVolume {
        metadata: ObjectMeta {
            name: Some("pv-no-csi".into()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeSpec {
            host_path: Some(HostPathVolumeSource::default()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let cases: [(&str, Option<&PersistentVolume>, &str); 3] = [
        ("nil-pv", None, ""),
        (
            "csi-pv",
            Some(&csi_pv),
            "hostpath.csi.k8s.io^df39ea9e-1296-11ef-adde-baf37ed30dae",
        ),
        ("hostpath-pv", Some(&host_path_pv), ""),
    ];
    for (name, pv, expected) in cases {
        assert_eq!(persistent_volume_key(pv), expected, "{name}");
    }
}
