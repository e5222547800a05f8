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

mod csi;
mod in_tree;
mod others;

/// The whole corpus, each case's `name` also written into its input.
pub fn corpus() -> Vec<Case> {
    let mut out = Vec::new();
    in_tree::in_tree_pvs(&mut out);
    csi::csi_pvs(&mut out);
    others::inline_volumes(&mut out);
    others::storage_classes(&mut out);
    others::repairs_and_names(&mut out);
    for case in &mut out {
        case.input["name"] = json!(case.name);
    }
    out
}
