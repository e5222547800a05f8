//! CSI PVs of every migrated driver, translated back to in-tree.

use serde_json::{Value, json};

use super::*;

fn csi_pv(driver: &str, handle: &str) -> Value {
    pv_base("csi", json!({"driver": driver, "volumeHandle": handle}))
}

/// Node affinity of a CSI PV on the driver's zone key (and region key where the driver has one).
fn csi_topology(
    zone_key: &'static str,
    region_key: Option<&'static str>,
    zone_a: &'static str,
    zone_b: &'static str,
    zone_c: &'static str,
) -> (&'static str, Options<'static>) {
    let mut options: Options<'static> = vec![
        ("none", nothing()),
        (
            "zone",
            set(
                &["spec", "nodeAffinity"],
                affinity(json!([{"matchExpressions": [requirement(zone_key, &[zone_a])]}])),
            ),
        ),
        (
            "two-zones",
            set(
                &["spec", "nodeAffinity"],
                affinity(json!([{"matchExpressions": [requirement(zone_key, &[zone_b, zone_a])]}])),
            ),
        ),
        (
            "cross-region",
            set(
                &["spec", "nodeAffinity"],
                affinity(json!([{"matchExpressions": [requirement(zone_key, &[zone_a, zone_c])]}])),
            ),
        ),
        (
            "two-terms",
            set(
                &["spec", "nodeAffinity"],
                affinity(json!([
                    {"matchExpressions": [requirement(zone_key, &[zone_a])]},
                    {"matchExpressions": [requirement(zone_key, &[zone_c])]}
                ])),
            ),
        ),
        (
            "hostname-only",
            set(
                &["spec", "nodeAffinity"],
                affinity(
                    json!([{"matchExpressions": [requirement("kubernetes.io/hostname", &["n1"])]}]),
                ),
            ),
        ),
        (
            "ga-zone-key",
            set(
                &["spec", "nodeAffinity"],
                affinity(json!([{"matchExpressions": [requirement(GA_ZONE, &[zone_a])]}])),
            ),
        ),
        (
            "with-region",
            set(
                &["spec", "nodeAffinity"],
                affinity(
                    json!([{"matchExpressions": [requirement(zone_key, &[zone_a]), requirement(GA_REGION, &["r1"])]}]),
                ),
            ),
        ),
        (
            "beta-zone-label",
            Box::new(move |pv: &mut Value| {
                pv["metadata"]["labels"] = json!({BETA_ZONE: "pre-set"});
                pv["spec"]["nodeAffinity"] =
                    affinity(json!([{"matchExpressions": [requirement(zone_key, &[zone_a])]}]));
            }),
        ),
        (
            "empty-terms",
            set(&["spec", "nodeAffinity"], affinity(json!([]))),
        ),
    ];
    if let Some(region_key) = region_key {
        options.push((
            "driver-region",
            set(&["spec", "nodeAffinity"], affinity(json!([{"matchExpressions": [requirement(zone_key, &[zone_a]), requirement(region_key, &["r1"])]}]))),
        ));
    }
    ("affinity", options)
}

fn attributes(options: &[(&'static str, Value)]) -> (&'static str, Options<'static>) {
    let mut all: Options<'static> = vec![("none", nothing())];
    for (name, value) in options {
        all.push((
            name,
            set(&["spec", "csi", "volumeAttributes"], value.clone()),
        ));
    }
    ("volumeAttributes", all)
}

pub(super) fn csi_pvs(out: &mut Vec<Case>) {
    let gce = csi_pv(
        "pd.csi.storage.gke.io",
        "projects/p/zones/us-central1-a/disks/disk-1",
    );
    let dims = vec![
        (
            "handle",
            vec![
                ("zonal", nothing()),
                (
                    "regional",
                    set(
                        &["spec", "csi", "volumeHandle"],
                        json!("projects/p/regions/us-central1/disks/disk-1"),
                    ),
                ),
                (
                    "short",
                    set(
                        &["spec", "csi", "volumeHandle"],
                        json!("projects/p/disks/disk-1"),
                    ),
                ),
                (
                    "unspecified",
                    set(
                        &["spec", "csi", "volumeHandle"],
                        json!("projects/UNSPECIFIED/zones/UNSPECIFIED/disks/disk-1"),
                    ),
                ),
            ],
        ),
        attributes(&[
            ("partition-empty", json!({"partition": ""})),
            ("partition-2", json!({"partition": "2"})),
            ("partition-plus", json!({"partition": "+7"})),
            ("partition-bad", json!({"partition": "two"})),
            ("partition-zero", json!({"partition": "0"})),
            (
                "partition-huge",
                json!({"partition": "99999999999999999999"}),
            ),
        ]),
        csi_topology(
            "topology.gke.io/zone",
            None,
            "us-central1-a",
            "us-central1-b",
            "us-east1-b",
        ),
        (
            "fs",
            vec![
                ("none", nothing()),
                (
                    "ext4-ro",
                    Box::new(|pv: &mut Value| {
                        pv["spec"]["csi"]["fsType"] = json!("ext4");
                        pv["spec"]["csi"]["readOnly"] = json!(true);
                    }),
                ),
            ],
        ),
    ];
    vary("gce-pd/csipv", &gce, &dims, 40, 11, &wrap_pv("csipv"), out);

    let ebs = csi_pv("ebs.csi.aws.com", "vol-0123");
    let dims = vec![
        attributes(&[
            ("partition-1", json!({"partition": "1"})),
            ("partition-empty", json!({"partition": ""})),
            ("partition-bad", json!({"partition": "x"})),
        ]),
        csi_topology(
            "topology.ebs.csi.aws.com/zone",
            None,
            "us-east-1a",
            "us-east-1b",
            "eu-west-1a",
        ),
        (
            "zone-format",
            vec![
                ("standard", nothing()),
                (
                    "gov",
                    set(
                        &["spec", "nodeAffinity"],
                        affinity(
                            json!([{"matchExpressions": [requirement("topology.ebs.csi.aws.com/zone", &["us-gov-west-1a"])]}]),
                        ),
                    ),
                ),
                (
                    "local-zone",
                    set(
                        &["spec", "nodeAffinity"],
                        affinity(
                            json!([{"matchExpressions": [requirement("topology.ebs.csi.aws.com/zone", &["us-west-2-lax-1a"])]}]),
                        ),
                    ),
                ),
                (
                    "wavelength",
                    set(
                        &["spec", "nodeAffinity"],
                        affinity(
                            json!([{"matchExpressions": [requirement("topology.ebs.csi.aws.com/zone", &["us-east-1-wl1-bos-wlz-1"])]}]),
                        ),
                    ),
                ),
                (
                    "five-parts",
                    set(
                        &["spec", "nodeAffinity"],
                        affinity(
                            json!([{"matchExpressions": [requirement("topology.ebs.csi.aws.com/zone", &["us-west-2-lax-1"])]}]),
                        ),
                    ),
                ),
                (
                    "bad",
                    set(
                        &["spec", "nodeAffinity"],
                        affinity(
                            json!([{"matchExpressions": [requirement("topology.ebs.csi.aws.com/zone", &["useast"])]}]),
                        ),
                    ),
                ),
                (
                    "three-long",
                    set(
                        &["spec", "nodeAffinity"],
                        affinity(
                            json!([{"matchExpressions": [requirement("topology.ebs.csi.aws.com/zone", &["us-east-1abc"])]}]),
                        ),
                    ),
                ),
            ],
        ),
    ];
    vary("aws-ebs/csipv", &ebs, &dims, 30, 12, &wrap_pv("csipv"), out);

    let cinder = csi_pv("cinder.csi.openstack.org", "c0ffee");
    let dims = vec![
        csi_topology(
            "topology.cinder.csi.openstack.org/zone",
            None,
            "nova",
            "nova2",
            "other",
        ),
        (
            "fs",
            vec![
                ("none", nothing()),
                (
                    "ext4-ro",
                    Box::new(|pv: &mut Value| {
                        pv["spec"]["csi"]["fsType"] = json!("ext4");
                        pv["spec"]["csi"]["readOnly"] = json!(true);
                    }) as Box<dyn Fn(&mut Value)>,
                ),
            ],
        ),
    ];
    vary(
        "cinder/csipv",
        &cinder,
        &dims,
        10,
        13,
        &wrap_pv("csipv"),
        out,
    );

    let vsphere = csi_pv("csi.vsphere.vmware.com", "5f1c-disk");
    let dims = vec![
        csi_topology(
            "topology.csi.vmware.com/zone",
            Some("topology.csi.vmware.com/region"),
            "zone-a",
            "zone-b",
            "zone-c",
        ),
        attributes(&[
            (
                "initial-path",
                json!({"initialvolumefilepath": "[ds] d.vmdk"}),
            ),
            ("other", json!({"storagepolicyname": "gold"})),
        ]),
    ];
    vary(
        "vsphere/csipv",
        &vsphere,
        &dims,
        15,
        14,
        &wrap_pv("csipv"),
        out,
    );

    let azure_disk = csi_pv(
        "disk.csi.azure.com",
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/d1",
    );
    let dims = vec![
        (
            "handle",
            vec![
                ("managed", nothing()),
                (
                    "unmanaged",
                    set(
                        &["spec", "csi", "volumeHandle"],
                        json!("https://account.blob.core.windows.net/vhds/d1.vhd"),
                    ),
                ),
                (
                    "http-upper",
                    set(&["spec", "csi", "volumeHandle"], json!("HTTP://a/vhds/x")),
                ),
                (
                    "bad",
                    set(&["spec", "csi", "volumeHandle"], json!("disk-1")),
                ),
                (
                    "bad-unmanaged",
                    set(
                        &["spec", "csi", "volumeHandle"],
                        json!("https://account/other/d1"),
                    ),
                ),
            ],
        ),
        attributes(&[
            ("caching", json!({"cachingMode": "ReadOnly"})),
            ("fstype", json!({"fsType": "xfs"})),
            ("empty-values", json!({"cachingmode": "", "fstype": ""})),
            ("kind", json!({"kind": "Managed", "other": "x"})),
        ]),
        (
            "fs",
            vec![
                ("none", nothing()),
                (
                    "ext4-ro",
                    Box::new(|pv: &mut Value| {
                        pv["spec"]["csi"]["fsType"] = json!("ext4");
                        pv["spec"]["csi"]["readOnly"] = json!(true);
                    }) as Box<dyn Fn(&mut Value)>,
                ),
            ],
        ),
    ];
    vary(
        "azure-disk/csipv",
        &azure_disk,
        &dims,
        15,
        15,
        &wrap_pv("csipv"),
        out,
    );

    let azure_file = csi_pv("file.csi.azure.com", "rg#acct#share#pv-1#ns");
    let dims = vec![
        (
            "handle",
            vec![
                ("five-parts", nothing()),
                (
                    "three-parts",
                    set(&["spec", "csi", "volumeHandle"], json!("#acct#share")),
                ),
                (
                    "bad",
                    set(&["spec", "csi", "volumeHandle"], json!("acct#share")),
                ),
            ],
        ),
        attributes(&[
            ("share", json!({"shareName": "s2"})),
            (
                "share-secret",
                json!({"shareName": "s2", "secretName": "sec"}),
            ),
            (
                "all",
                json!({"sharename": "s2", "secretname": "sec", "secretnamespace": "sns"}),
            ),
        ]),
        (
            "nodeStageSecretRef",
            vec![
                ("none", nothing()),
                (
                    "full",
                    set(
                        &["spec", "csi", "nodeStageSecretRef"],
                        json!({"name": "ref", "namespace": "refns"}),
                    ),
                ),
                (
                    "name-only",
                    set(
                        &["spec", "csi", "nodeStageSecretRef"],
                        json!({"name": "ref"}),
                    ),
                ),
                (
                    "namespace-only",
                    set(
                        &["spec", "csi", "nodeStageSecretRef"],
                        json!({"namespace": "refns"}),
                    ),
                ),
            ],
        ),
        (
            "annotations",
            vec![
                ("none", nothing()),
                ("some", set(&["metadata", "annotations"], json!({"a": "b"}))),
            ],
        ),
    ];
    vary(
        "azure-file/csipv",
        &azure_file,
        &dims,
        20,
        16,
        &wrap_pv("csipv"),
        out,
    );

    let portworx = csi_pv("pxd.portworx.com", "px-1");
    let dims = vec![(
        "fs",
        vec![
            ("none", nothing()),
            (
                "ext4-ro",
                Box::new(|pv: &mut Value| {
                    pv["spec"]["csi"]["fsType"] = json!("ext4");
                    pv["spec"]["csi"]["readOnly"] = json!(true);
                }) as Box<dyn Fn(&mut Value)>,
            ),
        ],
    )];
    vary(
        "portworx/csipv",
        &portworx,
        &dims,
        0,
        17,
        &wrap_pv("csipv"),
        out,
    );

    out.push(Case {
        name: "unsupported/csipv/other-driver".to_owned(),
        input: wrap_pv("csipv")(csi_pv("hostpath.csi.k8s.io", "h")),
    });
    out.push(Case {
        name: "unsupported/csipv/no-csi-source".to_owned(),
        input: wrap_pv("csipv")(pv_base("gcePersistentDisk", json!({"pdName": "d"}))),
    });
}
