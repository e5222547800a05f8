//! A generated corpus of translation cases: every plugin's in-tree PVs, CSI PVs, inline volumes
//! and StorageClasses, with the branches of each rule (topology in labels or node affinity, GA
//! or beta keys, one zone or several, good and bad volume handles, partitions, access modes,
//! parameters), as JSON lines in the oracle program's input format.
//!
//! Each dimension is varied one at a time around a base case, and then combined by a small
//! deterministic generator, so the corpus is the same on every run. Inputs that make
//! csi-translation-lib's own output depend on Go's map order (two spellings of one parameter,
//! `zone` and `zones` together, a PV with two sources) are left out.

use serde_json::{Value, json};

/// One case: its name and the oracle's input line.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub input: Value,
}

/// A deterministic xorshift generator, so combinations are reproducible.
struct Rng(u64);

impl Rng {
    fn pick(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// One varied dimension: named options that each change the object.
type Options<'a> = Vec<(&'a str, Box<dyn Fn(&mut Value) + 'a>)>;

fn set(path: &'static [&'static str], value: Value) -> Box<dyn Fn(&mut Value)> {
    Box::new(move |object: &mut Value| {
        let mut cursor = object;
        for key in &path[..path.len() - 1] {
            cursor = cursor
                .as_object_mut()
                .expect("object")
                .entry(*key)
                .or_insert_with(|| json!({}));
        }
        cursor[path[path.len() - 1]] = value.clone();
    })
}

fn nothing() -> Box<dyn Fn(&mut Value)> {
    Box::new(|_| {})
}

/// Base case, each option of each dimension alone, then `combined` random combinations.
fn vary(
    prefix: &str,
    base: &Value,
    dimensions: &[(&str, Options<'_>)],
    combined: usize,
    seed: u64,
    wrap: &dyn Fn(Value) -> Value,
    out: &mut Vec<Case>,
) {
    out.push(Case {
        name: format!("{prefix}/base"),
        input: wrap(base.clone()),
    });
    for (dimension, options) in dimensions {
        for (option, apply) in options {
            let mut object = base.clone();
            apply(&mut object);
            out.push(Case {
                name: format!("{prefix}/{dimension}={option}"),
                input: wrap(object),
            });
        }
    }
    let mut rng = Rng(seed);
    for i in 0..combined {
        let mut object = base.clone();
        let mut parts = Vec::new();
        for (dimension, options) in dimensions {
            let (option, apply) = &options[rng.pick(options.len())];
            apply(&mut object);
            parts.push(format!("{dimension}={option}"));
        }
        out.push(Case {
            name: format!("{prefix}/combined-{i}:{}", parts.join(",")),
            input: wrap(object),
        });
    }
}

const GA_ZONE: &str = "topology.kubernetes.io/zone";
const GA_REGION: &str = "topology.kubernetes.io/region";
const BETA_ZONE: &str = "failure-domain.beta.kubernetes.io/zone";
const BETA_REGION: &str = "failure-domain.beta.kubernetes.io/region";

fn affinity(terms: Value) -> Value {
    json!({"required": {"nodeSelectorTerms": terms}})
}

fn requirement(key: &str, values: &[&str]) -> Value {
    json!({"key": key, "operator": "In", "values": values})
}

/// Zone and region labels and node affinity of an in-tree PV, with `zone_a`/`zone_b` in one
/// region and `zone_c` in another.
fn in_tree_topology(
    zone_a: &'static str,
    zone_b: &'static str,
    zone_c: &'static str,
) -> Vec<(&'static str, Options<'static>)> {
    let two = Box::leak(format!("{zone_a}__{zone_b}").into_boxed_str());
    let cross = Box::leak(format!("{zone_a}__{zone_c}").into_boxed_str());
    vec![
        (
            "labels",
            vec![
                ("none", nothing()),
                (
                    "ga-zone",
                    set(&["metadata", "labels"], json!({GA_ZONE: zone_a})),
                ),
                (
                    "beta-zone",
                    set(&["metadata", "labels"], json!({BETA_ZONE: zone_a})),
                ),
                (
                    "ga-two-zones",
                    set(&["metadata", "labels"], json!({GA_ZONE: two})),
                ),
                (
                    "beta-two-zones",
                    set(&["metadata", "labels"], json!({BETA_ZONE: two})),
                ),
                (
                    "cross-region",
                    set(&["metadata", "labels"], json!({GA_ZONE: cross})),
                ),
                (
                    "bad-zone",
                    set(&["metadata", "labels"], json!({GA_ZONE: "zone1__zone2"})),
                ),
                (
                    "empty-zone",
                    set(&["metadata", "labels"], json!({GA_ZONE: ""})),
                ),
                (
                    "spaced-zone",
                    set(
                        &["metadata", "labels"],
                        json!({GA_ZONE: format!(" {zone_a} __")}),
                    ),
                ),
                (
                    "ga-zone-and-region",
                    set(
                        &["metadata", "labels"],
                        json!({GA_ZONE: zone_a, GA_REGION: "region1"}),
                    ),
                ),
                (
                    "beta-zone-and-region",
                    set(
                        &["metadata", "labels"],
                        json!({BETA_ZONE: zone_a, BETA_REGION: "region1"}),
                    ),
                ),
                ("other", set(&["metadata", "labels"], json!({"app": "db"}))),
            ],
        ),
        (
            "affinity",
            vec![
                ("none", nothing()),
                (
                    "ga-zone",
                    set(
                        &["spec", "nodeAffinity"],
                        affinity(json!([{"matchExpressions": [requirement(GA_ZONE, &[zone_a])]}])),
                    ),
                ),
                (
                    "beta-zone",
                    set(
                        &["spec", "nodeAffinity"],
                        affinity(
                            json!([{"matchExpressions": [requirement(BETA_ZONE, &[zone_b, zone_a])]}]),
                        ),
                    ),
                ),
                (
                    "beta-zone-region",
                    set(
                        &["spec", "nodeAffinity"],
                        affinity(
                            json!([{"matchExpressions": [requirement(BETA_ZONE, &[zone_a]), requirement(BETA_REGION, &["region1"])]}]),
                        ),
                    ),
                ),
                (
                    "ga-zone-region",
                    set(
                        &["spec", "nodeAffinity"],
                        affinity(
                            json!([{"matchExpressions": [requirement(GA_ZONE, &[zone_a]), requirement(GA_REGION, &["region1"])]}]),
                        ),
                    ),
                ),
                (
                    "two-terms",
                    set(
                        &["spec", "nodeAffinity"],
                        affinity(json!([
                            {"matchExpressions": [requirement(GA_ZONE, &[zone_a])]},
                            {"matchExpressions": [requirement(GA_ZONE, &[zone_b]), requirement("kubernetes.io/hostname", &["node1"])]}
                        ])),
                    ),
                ),
                (
                    "hostname",
                    set(
                        &["spec", "nodeAffinity"],
                        affinity(
                            json!([{"matchExpressions": [requirement("kubernetes.io/hostname", &["node1"])]}]),
                        ),
                    ),
                ),
                (
                    "empty-terms",
                    set(&["spec", "nodeAffinity"], affinity(json!([]))),
                ),
                (
                    "empty-term",
                    set(&["spec", "nodeAffinity"], affinity(json!([{}]))),
                ),
            ],
        ),
    ]
}

fn access_modes() -> (&'static str, Options<'static>) {
    (
        "accessModes",
        vec![
            ("none", nothing()),
            (
                "rwo",
                set(&["spec", "accessModes"], json!(["ReadWriteOnce"])),
            ),
            (
                "rox",
                set(&["spec", "accessModes"], json!(["ReadOnlyMany"])),
            ),
            (
                "rwx",
                set(&["spec", "accessModes"], json!(["ReadWriteMany"])),
            ),
            (
                "rox-rwo",
                set(
                    &["spec", "accessModes"],
                    json!(["ReadOnlyMany", "ReadWriteOnce"]),
                ),
            ),
            (
                "rox-rwx",
                set(
                    &["spec", "accessModes"],
                    json!(["ReadWriteMany", "ReadOnlyMany"]),
                ),
            ),
            (
                "rwop",
                set(&["spec", "accessModes"], json!(["ReadWriteOncePod"])),
            ),
        ],
    )
}

fn pv_base(source_key: &str, source: Value) -> Value {
    json!({
        "metadata": {"name": "pv-1"},
        "spec": {
            "capacity": {"storage": "10Gi"},
            "persistentVolumeReclaimPolicy": "Delete",
            "claimRef": {"namespace": "claim-ns", "name": "claim"},
            "storageClassName": "standard",
            source_key: source,
        }
    })
}

fn wrap_pv(op: &'static str) -> impl Fn(Value) -> Value {
    move |pv| json!({"op": op, "pv": pv})
}

fn in_tree_pvs(out: &mut Vec<Case>) {
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

fn csi_pvs(out: &mut Vec<Case>) {
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

fn inline_volumes(out: &mut Vec<Case>) {
    let wrap = |namespace: &'static str| move |volume: Value| json!({"op": "inline", "volume": volume, "namespace": namespace});
    let volumes: Vec<(&str, Value)> = vec![
        (
            "gce-pd",
            json!({"name": "v", "gcePersistentDisk": {"pdName": "d1"}}),
        ),
        (
            "gce-pd-ro-part",
            json!({"name": "v", "gcePersistentDisk": {"pdName": "d1", "readOnly": true, "partition": 2, "fsType": "ext4"}}),
        ),
        (
            "aws-ebs",
            json!({"name": "v", "awsElasticBlockStore": {"volumeID": "aws://us-east-1a/vol-1", "partition": 1}}),
        ),
        (
            "aws-ebs-bad",
            json!({"name": "v", "awsElasticBlockStore": {"volumeID": "aws://us-east-1a/disk-1"}}),
        ),
        (
            "aws-ebs-ro",
            json!({"name": "v", "awsElasticBlockStore": {"volumeID": "vol-1", "readOnly": true, "fsType": "xfs"}}),
        ),
        (
            "cinder",
            json!({"name": "v", "cinder": {"volumeID": "c1", "readOnly": true, "fsType": "ext4"}}),
        ),
        (
            "azure-disk",
            json!({"name": "v", "azureDisk": {"diskName": "d", "diskURI": "/subscriptions/s/resourceGroups/r/providers/Microsoft.Compute/disks/d"}}),
        ),
        (
            "azure-disk-full",
            json!({"name": "v", "azureDisk": {"diskName": "d", "diskURI": "uri", "kind": "Managed", "cachingMode": "ReadWrite", "fsType": "ext4", "readOnly": true}}),
        ),
        (
            "azure-disk-empty-caching",
            json!({"name": "v", "azureDisk": {"diskName": "d", "diskURI": "uri", "cachingMode": ""}}),
        ),
        (
            "azure-disk-shared",
            json!({"name": "v", "azureDisk": {"diskName": "d", "diskURI": "uri", "kind": "Shared"}}),
        ),
        (
            "azure-file",
            json!({"name": "v", "azureFile": {"secretName": "azure-storage-account-acct-secret", "shareName": "share"}}),
        ),
        (
            "azure-file-other-secret",
            json!({"name": "v", "azureFile": {"secretName": "plain", "shareName": "share", "readOnly": true}}),
        ),
        (
            "vsphere",
            json!({"name": "v", "vsphereVolume": {"volumePath": "[ds] d.vmdk", "fsType": "ext4"}}),
        ),
        (
            "vsphere-policy",
            json!({"name": "v", "vsphereVolume": {"volumePath": "[ds] d.vmdk", "storagePolicyName": "gold"}}),
        ),
        (
            "portworx",
            json!({"name": "v", "portworxVolume": {"volumeID": "px", "fsType": "ext4"}}),
        ),
        (
            "portworx-ro",
            json!({"name": "v", "portworxVolume": {"volumeID": "px", "readOnly": true}}),
        ),
        ("unsupported", json!({"name": "v", "emptyDir": {}})),
    ];
    for (name, volume) in volumes {
        for namespace in ["", "pod-ns"] {
            out.push(Case {
                name: format!("inline/{name}/namespace={namespace}"),
                input: wrap(namespace)(volume.clone()),
            });
        }
    }
}

fn storage_classes(out: &mut Vec<Case>) {
    let plugins = [
        "kubernetes.io/gce-pd",
        "kubernetes.io/aws-ebs",
        "kubernetes.io/cinder",
        "kubernetes.io/azure-disk",
        "kubernetes.io/azure-file",
        "kubernetes.io/vsphere-volume",
        "kubernetes.io/portworx-volume",
    ];
    let parameters: Vec<(&str, Value)> = vec![
        ("none", Value::Null),
        ("empty", json!({})),
        ("fstype", json!({"fstype": "ext4"})),
        ("fsType", json!({"fsType": "xfs", "type": "pd-ssd"})),
        ("FSTYPE", json!({"FSTYPE": "xfs"})),
        ("zone", json!({"zone": "us-central1-a"})),
        ("Zone", json!({"Zone": "us-central1-a", "type": "gp2"})),
        ("zones", json!({"zones": "us-central1-a,us-central1-b"})),
        ("zones-spaces", json!({"zones": "a, b,"})),
        ("iops", json!({"iopsPerGB": "10", "type": "io1"})),
        (
            "vsphere",
            json!({"datastore": "ds", "diskformat": "thin", "hostFailuresToTolerate": "1", "forceProvisioning": "true", "cacheReservation": "1", "diskstripes": "2", "objectspacereservation": "3", "iopslimit": "4", "storagePolicyName": "gold", "unknown": "x"}),
        ),
        (
            "portworx",
            json!({"openstorage.io/auth-secret-name": "px", "openstorage.io/auth-secret-namespace": "pxns", "repl": "2"}),
        ),
        (
            "azure",
            json!({"skuName": "Standard_LRS", "cachingMode": "ReadOnly", "kind": "managed"}),
        ),
        (
            "azure-zoned",
            json!({"skuName": "Premium_LRS", "zoned": "true", "zones": "1,2"}),
        ),
    ];
    let topologies: Vec<(&str, Value)> = vec![
        ("none", Value::Null),
        (
            "ga-zone",
            json!([{"matchLabelExpressions": [{"key": GA_ZONE, "values": ["us-central1-a"]}]}]),
        ),
        (
            "beta-zone",
            json!([{"matchLabelExpressions": [{"key": BETA_ZONE, "values": ["us-central1-a", "us-central1-b"]}]}]),
        ),
        (
            "other-key",
            json!([{"matchLabelExpressions": [{"key": "kubernetes.io/hostname", "values": ["n1"]}]}]),
        ),
        (
            "two-terms",
            json!([
                {"matchLabelExpressions": [{"key": GA_ZONE, "values": ["a"]}, {"key": "x", "values": ["y"]}]},
                {"matchLabelExpressions": [{"key": BETA_ZONE, "values": ["b"]}]}
            ]),
        ),
        ("empty-term", json!([{}])),
        (
            "azure-numeric",
            json!([{"matchLabelExpressions": [{"key": "topology.disk.csi.azure.com/zone", "values": ["0", "eastus-1", "12"]}]}]),
        ),
        ("empty-list", json!([])),
    ];
    for plugin in plugins {
        let short = plugin.trim_start_matches("kubernetes.io/");
        for (pname, params) in &parameters {
            for (tname, topology) in &topologies {
                let mut sc = json!({
                    "metadata": {"name": "sc"},
                    "provisioner": plugin,
                    "reclaimPolicy": "Delete",
                    "volumeBindingMode": "WaitForFirstConsumer",
                });
                if !params.is_null() {
                    sc["parameters"] = params.clone();
                }
                if !topology.is_null() {
                    sc["allowedTopologies"] = topology.clone();
                }
                out.push(Case {
                    name: format!("{short}/sc/parameters={pname},allowedTopologies={tname}"),
                    input: json!({"op": "sc", "plugin": plugin, "sc": sc}),
                });
            }
        }
    }
    out.push(Case {
        name: "unsupported/sc/unknown-plugin".to_owned(),
        input: json!({"op": "sc", "plugin": "kubernetes.io/nfs", "sc": {"metadata": {"name": "sc"}, "provisioner": "kubernetes.io/nfs"}}),
    });
}

fn repairs_and_names(out: &mut Vec<Case>) {
    let gce = "pd.csi.storage.gke.io";
    let repairs: Vec<(&str, &str, &str, &str)> = vec![
        (
            "zonal-unspecified",
            gce,
            "projects/UNSPECIFIED/zones/UNSPECIFIED/disks/d",
            "projects/p1/zones/us-central1-c/instances/n",
        ),
        (
            "zonal-zone-known",
            gce,
            "projects/UNSPECIFIED/zones/us-east1-b/disks/d",
            "projects/p1/zones/us-central1-c/instances/n",
        ),
        (
            "regional-unspecified",
            gce,
            "projects/UNSPECIFIED/regions/UNSPECIFIED/disks/d",
            "projects/p1/zones/us-central1-c/instances/n",
        ),
        (
            "regional-known",
            gce,
            "projects/UNSPECIFIED/regions/us-east1/disks/d",
            "projects/p1/zones/us-central1-c/instances/n",
        ),
        (
            "regional-bad-node-zone",
            gce,
            "projects/UNSPECIFIED/regions/UNSPECIFIED/disks/d",
            "projects/p1/zones/zone/instances/n",
        ),
        (
            "project-known",
            gce,
            "projects/p/zones/z/disks/d",
            "whatever",
        ),
        (
            "short-handle",
            gce,
            "projects/UNSPECIFIED/disks/d",
            "projects/p1/zones/z/instances/n",
        ),
        (
            "short-node",
            gce,
            "projects/UNSPECIFIED/zones/z/disks/d",
            "node-1",
        ),
        (
            "bad-regionality",
            gce,
            "projects/UNSPECIFIED/global/z/disks/d",
            "projects/p1/zones/z/instances/n",
        ),
        ("ebs", "ebs.csi.aws.com", "vol-1", "i-1"),
        ("azure-disk", "disk.csi.azure.com", "uri", "n"),
        ("unknown", "hostpath.csi.k8s.io", "h", "n"),
    ];
    for (name, driver, handle, node) in repairs {
        out.push(Case {
            name: format!("repair/{name}"),
            input: json!({"op": "repair", "driver": driver, "handle": handle, "node": node}),
        });
    }
    for name in [
        "kubernetes.io/gce-pd",
        "kubernetes.io/aws-ebs",
        "kubernetes.io/cinder",
        "kubernetes.io/azure-disk",
        "kubernetes.io/azure-file",
        "kubernetes.io/vsphere-volume",
        "kubernetes.io/portworx-volume",
        "pd.csi.storage.gke.io",
        "ebs.csi.aws.com",
        "cinder.csi.openstack.org",
        "disk.csi.azure.com",
        "file.csi.azure.com",
        "csi.vsphere.vmware.com",
        "pxd.portworx.com",
        "kubernetes.io/nfs",
        "hostpath.csi.k8s.io",
        "",
    ] {
        out.push(Case {
            name: format!("names/{name}"),
            input: json!({"op": "names", "plugin": name}),
        });
    }
}

/// The whole corpus, each case's `name` also written into its input.
pub fn corpus() -> Vec<Case> {
    let mut out = Vec::new();
    in_tree_pvs(&mut out);
    csi_pvs(&mut out);
    inline_volumes(&mut out);
    storage_classes(&mut out);
    repairs_and_names(&mut out);
    for case in &mut out {
        case.input["name"] = json!(case.name);
    }
    out
}
