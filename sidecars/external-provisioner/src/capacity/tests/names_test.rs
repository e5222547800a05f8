//! Upstream's `cmd/csi-provisioner/util_test.go`: `TestGetNameWithMaxLength` (8 cases), and
//! the managed-by label built from it.

use crate::capacity::{managed_by_id, name_with_max_length};

const EXTERNAL_PROVISIONER: &str = "external-provisioner";

#[test]
fn get_name_with_max_length() {
    let a = |n: usize| "a".repeat(n);
    let cases: Vec<(&str, String, String, &str)> = vec![
        (
            "unchanged",
            format!("{EXTERNAL_PROVISIONER}-node01"),
            "node01".into(),
            EXTERNAL_PROVISIONER,
        ),
        ("with empty base", "node01".into(), "node01".into(), ""),
        (
            "exactly63",
            format!("{EXTERNAL_PROVISIONER}-node{}", a(38)),
            format!("node{}", a(38)),
            EXTERNAL_PROVISIONER,
        ),
        (
            "one over",
            format!("external-p-53f40b57-node{}", a(39)),
            format!("node{}", a(39)),
            EXTERNAL_PROVISIONER,
        ),
        (
            "long node name with 52",
            format!("e-53f40b57-node{}", a(48)),
            format!("node{}", a(48)),
            EXTERNAL_PROVISIONER,
        ),
        (
            "long node name with 53, ignore suffix ",
            format!("{EXTERNAL_PROVISIONER}-a3607ff1"),
            format!("node{}", a(49)),
            EXTERNAL_PROVISIONER,
        ),
        (
            "very long, ignore suffix",
            format!("{EXTERNAL_PROVISIONER}-df38e37f"),
            format!("node{}", a(63)),
            EXTERNAL_PROVISIONER,
        ),
        (
            "long node name ,with empty base",
            "fa65587e".into(),
            format!("node{}", a(63)),
            "",
        ),
    ];
    for (name, expected, node, base) in cases {
        let result = name_with_max_length(base, &node, 63);
        assert_eq!(result, expected, "{name}");
        assert!(result.len() <= 63, "{name}: {result}");
    }
}

#[test]
fn managed_by_is_the_central_id_or_the_node_specific_one() {
    assert_eq!(managed_by_id(None), "external-provisioner");
    assert_eq!(managed_by_id(Some("node01")), "external-provisioner-node01");
    let long = format!("node{}", "a".repeat(39));
    assert_eq!(
        managed_by_id(Some(&long)),
        format!("external-p-53f40b57-{long}")
    );
}
