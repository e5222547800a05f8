//! external-provisioner's `TestBytesToQuantity` (5 cases, with their names), and the cases of
//! both sidecars for parsing and comparing quantities.

use super::*;

#[test]
fn test_bytes_to_quantity() {
    let gib = 1024.0 * 1024.0 * 1024.0;
    let cases: [(&str, f64, &str); 5] = [
        (
            "Gibibyte that cannot be put into any nice format without loss precision",
            5.56 * gib,
            "5970004541",
        ),
        ("Gibibyte that can be parsed nicer", 5.5 * gib, "5632Mi"),
        ("Gibibyte exact", 5.0 * gib, "5Gi"),
        (
            "Mebibyte that cannot be parsed nicer",
            5.23 * 1024.0 * 1024.0,
            "5484052",
        ),
        ("Kibibyte that can be parsed nicer", 102400.0, "100Ki"),
    ];
    for (name, bytes, expected) in cases {
        assert_eq!(bytes_to_quantity(bytes as i64).0, expected, "{name}");
    }
    // Below 1024, apimachinery falls back to the decimal form.
    assert_eq!(bytes_to_quantity(100).0, "100");
    assert_eq!(bytes_to_quantity(1000).0, "1k");
    assert_eq!(bytes_to_quantity(0).0, "0");
    assert_eq!(bytes_to_quantity(3 * 1024 * 1024 * 1024).0, "3Gi");
}

#[test]
fn quantities_round_up_as_apimachinery() {
    let cases = [
        ("100", Some(100)),
        ("1Gi", Some(1 << 30)),
        ("2Gi", Some(2 * 1024 * 1024 * 1024)),
        ("1.5Gi", Some(3 << 29)),
        ("1.5G", Some(1_500_000_000)),
        ("5M", Some(5_000_000)),
        ("1e3", Some(1000)),
        ("100m", Some(1)),
        ("1.0001", Some(2)),
        ("0", Some(0)),
        ("", None),
        ("Gi", None),
        ("1Xi", None),
    ];
    for (quantity, expected) in cases {
        assert_eq!(quantity_value(quantity), expected, "{quantity}");
    }
}

#[test]
fn quantities_compare_by_value() {
    let q = |s: &str| Quantity(s.into());
    assert!(cmp_quantity(Some(&q("1Gi")), Some(&q("1G"))).is_gt());
    assert!(cmp_quantity(Some(&q("1024Mi")), Some(&q("1Gi"))).is_eq());
    assert!(cmp_quantity(None, Some(&q("1"))).is_lt());
    assert!(cmp_quantity(Some(&q("nope")), None).is_eq());
}
