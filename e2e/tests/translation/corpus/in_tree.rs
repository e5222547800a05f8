//! In-tree PVs of every plugin, translated to CSI.

use serde_json::{Value, json};

use super::*;

pub(super) fn in_tree_pvs(out: &mut Vec<Case>) {
    let gce = pv_base("gcePersistentDisk", json!({"pdName": "disk-1"}));
    let mut dims = in_tree_topology("us-central1-a", "us-central1-b", "us-east1-b");
    dims.push(access_modes());
    dims.push((
        "source",
        vec![
            ("plain", nothing()),
            (
                "fs-ro",
                set(
                    &["spec", "gcePersistentDisk"],
                    json!({"pdName": "disk-1", "fsType": "ext4", "readOnly": true}),
                ),
            ),
            (
                "partition",
                set(
                    &["spec", "gcePersistentDisk"],
                    json!({"pdName": "disk-1", "partition": 3}),
                ),
            ),
        ],
    ));
    vary("gce-pd/pv", &gce, &dims, 60, 1, &wrap_pv("pv"), out);

    let ebs = pv_base("awsElasticBlockStore", json!({"volumeID": "vol-0123"}));
    let mut dims = in_tree_topology("us-east-1a", "us-east-1b", "eu-west-1a");
    dims.push(access_modes());
    dims.push((
        "volumeID",
        vec![
            ("bare", nothing()),
            (
                "aws-url",
                set(
                    &["spec", "awsElasticBlockStore", "volumeID"],
                    json!("aws://us-east-1a/vol-0123"),
                ),
            ),
            (
                "aws-no-zone",
                set(
                    &["spec", "awsElasticBlockStore", "volumeID"],
                    json!("aws:///vol-0123"),
                ),
            ),
            (
                "aws-bad-format",
                set(
                    &["spec", "awsElasticBlockStore", "volumeID"],
                    json!("aws://us-east-1a/disk-0123"),
                ),
            ),
            (
                "aws-nested",
                set(
                    &["spec", "awsElasticBlockStore", "volumeID"],
                    json!("aws://us-east-1a/x/vol-0123"),
                ),
            ),
            (
                "aws-escape",
                set(
                    &["spec", "awsElasticBlockStore", "volumeID"],
                    json!("aws://us-east-1a/vol-%41%42"),
                ),
            ),
            (
                "aws-bad-escape",
                set(
                    &["spec", "awsElasticBlockStore", "volumeID"],
                    json!("aws://us-east-1a/vol-%zz"),
                ),
            ),
            (
                "aws-bad-host",
                set(
                    &["spec", "awsElasticBlockStore", "volumeID"],
                    json!("aws://us east/vol-1"),
                ),
            ),
            (
                "aws-port",
                set(
                    &["spec", "awsElasticBlockStore", "volumeID"],
                    json!("aws://host:12/vol-1"),
                ),
            ),
            (
                "aws-bad-port",
                set(
                    &["spec", "awsElasticBlockStore", "volumeID"],
                    json!("aws://host:ab/vol-1"),
                ),
            ),
            (
                "aws-query",
                set(
                    &["spec", "awsElasticBlockStore", "volumeID"],
                    json!("aws://zone/vol-1?x=y#frag"),
                ),
            ),
            (
                "aws-trailing-slash",
                set(
                    &["spec", "awsElasticBlockStore", "volumeID"],
                    json!("aws://zone/vol-1/"),
                ),
            ),
            (
                "fs-partition-ro",
                set(
                    &["spec", "awsElasticBlockStore"],
                    json!({"volumeID": "vol-1", "fsType": "xfs", "partition": 2, "readOnly": true}),
                ),
            ),
        ],
    ));
    vary("aws-ebs/pv", &ebs, &dims, 60, 2, &wrap_pv("pv"), out);

    let cinder = pv_base("cinder", json!({"volumeID": "c0ffee"}));
    let mut dims = in_tree_topology("nova", "nova-2", "other");
    dims.push((
        "source",
        vec![
            ("plain", nothing()),
            ("fs-ro", set(&["spec", "cinder"], json!({"volumeID": "c0ffee", "fsType": "ext4", "readOnly": true, "secretRef": {"name": "s", "namespace": "n"}}))),
        ],
    ));
    vary("cinder/pv", &cinder, &dims, 30, 3, &wrap_pv("pv"), out);

    let vsphere = pv_base(
        "vsphereVolume",
        json!({"volumePath": "[datastore1] volumes/disk.vmdk"}),
    );
    let mut dims = in_tree_topology("zone-a", "zone-b", "zone-c");
    dims.push((
        "source",
        vec![
            ("plain", nothing()),
            ("policy-fs", set(&["spec", "vsphereVolume"], json!({"volumePath": "[ds] d.vmdk", "fsType": "ext4", "storagePolicyName": "gold", "storagePolicyID": "id-1"}))),
        ],
    ));
    vary("vsphere/pv", &vsphere, &dims, 30, 4, &wrap_pv("pv"), out);

    let azure_disk = pv_base(
        "azureDisk",
        json!({"diskName": "d1", "diskURI": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/d1"}),
    );
    let dims = vec![
        (
            "kind",
            vec![
                ("none", nothing()),
                (
                    "managed",
                    set(&["spec", "azureDisk", "kind"], json!("Managed")),
                ),
                (
                    "managed-lower",
                    set(&["spec", "azureDisk", "kind"], json!("managed")),
                ),
                (
                    "shared",
                    set(&["spec", "azureDisk", "kind"], json!("Shared")),
                ),
                (
                    "dedicated",
                    set(&["spec", "azureDisk", "kind"], json!("Dedicated")),
                ),
            ],
        ),
        (
            "cachingMode",
            vec![
                ("none", nothing()),
                (
                    "readonly",
                    set(&["spec", "azureDisk", "cachingMode"], json!("ReadOnly")),
                ),
                (
                    "empty",
                    set(&["spec", "azureDisk", "cachingMode"], json!("")),
                ),
            ],
        ),
        (
            "fsType",
            vec![
                ("none", nothing()),
                ("ext4", set(&["spec", "azureDisk", "fsType"], json!("ext4"))),
                ("empty", set(&["spec", "azureDisk", "fsType"], json!(""))),
            ],
        ),
        (
            "readOnly",
            vec![
                ("none", nothing()),
                ("true", set(&["spec", "azureDisk", "readOnly"], json!(true))),
                (
                    "false",
                    set(&["spec", "azureDisk", "readOnly"], json!(false)),
                ),
            ],
        ),
        (
            "labels",
            vec![
                ("none", nothing()),
                (
                    "zone",
                    set(&["metadata", "labels"], json!({GA_ZONE: "eastus-1"})),
                ),
            ],
        ),
    ];
    vary(
        "azure-disk/pv",
        &azure_disk,
        &dims,
        20,
        5,
        &wrap_pv("pv"),
        out,
    );

    let azure_file = pv_base(
        "azureFile",
        json!({"secretName": "azure-storage-account-acct-secret", "shareName": "share"}),
    );
    let dims = vec![
        (
            "secret",
            vec![
                ("account-format", nothing()),
                (
                    "other-name",
                    set(&["spec", "azureFile", "secretName"], json!("my-secret")),
                ),
                (
                    "namespace",
                    set(
                        &["spec", "azureFile", "secretNamespace"],
                        json!("secret-ns"),
                    ),
                ),
                (
                    "empty-namespace",
                    set(&["spec", "azureFile", "secretNamespace"], json!("")),
                ),
            ],
        ),
        (
            "claimRef",
            vec![
                ("with-namespace", nothing()),
                ("none", set(&["spec", "claimRef"], Value::Null)),
                (
                    "no-namespace",
                    set(&["spec", "claimRef"], json!({"name": "claim"})),
                ),
            ],
        ),
        (
            "annotations",
            vec![
                ("none", nothing()),
                (
                    "resource-group",
                    set(
                        &["metadata", "annotations"],
                        json!({"kubernetes.io/azure-file-resource-group": "rg1"}),
                    ),
                ),
            ],
        ),
        (
            "readOnly",
            vec![
                ("none", nothing()),
                ("true", set(&["spec", "azureFile", "readOnly"], json!(true))),
            ],
        ),
    ];
    vary(
        "azure-file/pv",
        &azure_file,
        &dims,
        20,
        6,
        &wrap_pv("pv"),
        out,
    );

    let portworx = pv_base("portworxVolume", json!({"volumeID": "px-1"}));
    let dims = vec![
        (
            "annotations",
            vec![
                ("none", nothing()),
                (
                    "secret",
                    set(
                        &["metadata", "annotations"],
                        json!({"openstorage.io/auth-secret-name": "px-secret", "openstorage.io/auth-secret-namespace": "px-ns"}),
                    ),
                ),
                (
                    "name-only",
                    set(
                        &["metadata", "annotations"],
                        json!({"openstorage.io/auth-secret-name": "px-secret"}),
                    ),
                ),
                (
                    "empty-values",
                    set(
                        &["metadata", "annotations"],
                        json!({"openstorage.io/auth-secret-name": "", "openstorage.io/auth-secret-namespace": ""}),
                    ),
                ),
            ],
        ),
        (
            "source",
            vec![
                ("plain", nothing()),
                (
                    "fs-ro",
                    set(
                        &["spec", "portworxVolume"],
                        json!({"volumeID": "px-1", "fsType": "ext4", "readOnly": true}),
                    ),
                ),
            ],
        ),
    ];
    vary("portworx/pv", &portworx, &dims, 8, 7, &wrap_pv("pv"), out);

    out.push(Case {
        name: "unsupported/pv/nfs".to_owned(),
        input: wrap_pv("pv")(pv_base("nfs", json!({"server": "s", "path": "/p"}))),
    });
}
