//! How a driver's `VolumeHealth` becomes the claim's conditions: the status mapping, unknown
//! statuses, and what the API would refuse.

use csi_proto::csi::v1 as csi;
use csi_proto::csi::v1::VolumeHealthErrorType as Type;

use super::volume_health::{condition, entry, health};
use crate::health::HealthCondition;
use crate::volume_health::{UnknownCondition, result_of, unknown_details};

/// A name, what the driver reports, and the conditions and unknown entries it becomes.
type MappingCase = (
    &'static str,
    Vec<csi::volume_health::VolumeHealthEntry>,
    Vec<HealthCondition>,
    Vec<UnknownCondition>,
);

#[test]
fn statuses_map_to_the_claims_conditions() {
    let cases: [MappingCase; 8] = [
        (
            "DEGRADED",
            vec![entry(Type::Degraded as i32, "PathDown", "1 of 2 paths")],
            vec![condition("Degraded", "PathDown", "1 of 2 paths")],
            vec![],
        ),
        (
            "INACCESSIBLE",
            vec![entry(Type::Inaccessible as i32, "VolumeNotFound", "gone")],
            vec![condition("Inaccessible", "VolumeNotFound", "gone")],
            vec![],
        ),
        (
            "DATA_LOSS",
            vec![entry(Type::DataLoss as i32, "DiskLost", "")],
            vec![condition("DataLoss", "DiskLost", "")],
            vec![],
        ),
        (
            "several, sorted by status and reason",
            vec![
                entry(Type::Inaccessible as i32, "Offline", ""),
                entry(Type::Degraded as i32, "SlowIO", ""),
                entry(Type::Degraded as i32, "PathDown", ""),
            ],
            vec![
                condition("Degraded", "PathDown", ""),
                condition("Degraded", "SlowIO", ""),
                condition("Inaccessible", "Offline", ""),
            ],
            vec![],
        ),
        (
            "unknown values ignored",
            vec![
                entry(Type::UnknownVolumeHealthType as i32, "Unset", ""),
                entry(9, "MultipathLoss", "a later spec's status"),
                entry(Type::Degraded as i32, "PathDown", ""),
            ],
            vec![condition("Degraded", "PathDown", "")],
            vec![
                UnknownCondition {
                    status: "UNKNOWN_VOLUME_HEALTH_TYPE".to_string(),
                    reason: "Unset".to_string(),
                    message: String::new(),
                },
                UnknownCondition {
                    status: "9".to_string(),
                    reason: "MultipathLoss".to_string(),
                    message: "a later spec's status".to_string(),
                },
            ],
        ),
        (
            "a second entry with the same status and reason",
            vec![
                entry(Type::Degraded as i32, "PathDown", "first"),
                entry(Type::Degraded as i32, "PathDown", "second"),
            ],
            vec![condition("Degraded", "PathDown", "first")],
            vec![],
        ),
        (
            "reasons the API refuses",
            vec![
                entry(Type::Degraded as i32, "", "no reason"),
                entry(Type::Degraded as i32, "path down", "a space"),
                entry(Type::Degraded as i32, "9Lives", "a digit first"),
                entry(Type::Degraded as i32, &"R".repeat(257), "too long"),
                entry(Type::Degraded as i32, "Path_Down,Slow:IO", "valid"),
            ],
            vec![condition("Degraded", "Path_Down,Slow:IO", "valid")],
            vec![],
        ),
        (
            "a long message is cut to 1024 bytes",
            vec![entry(Type::DataLoss as i32, "DiskLost", &"é".repeat(600))],
            vec![condition("DataLoss", "DiskLost", &"é".repeat(512))],
            vec![],
        ),
    ];
    for (name, entries, conditions, unknown) in cases {
        let got = result_of(Some(&health("v", entries)));
        assert_eq!(got.conditions, conditions, "{name}");
        assert_eq!(got.unknown, unknown, "{name}");
    }
    let many: Vec<_> = (0..20)
        .map(|i| entry(Type::Degraded as i32, &format!("Reason{i:02}"), ""))
        .collect();
    assert_eq!(result_of(Some(&health("v", many))).conditions.len(), 16);
    assert!(result_of(None).conditions.is_empty());
}

#[test]
fn unknown_details_are_upstreams_sorted_line() {
    let unknown = [
        UnknownCondition {
            status: "9".to_string(),
            reason: "MultipathLoss".to_string(),
            message: "one path left".to_string(),
        },
        UnknownCondition {
            status: "UNKNOWN_VOLUME_HEALTH_TYPE".to_string(),
            reason: String::new(),
            message: String::new(),
        },
    ];
    assert_eq!(
        unknown_details(&unknown),
        "9 (reason: MultipathLoss): one path left; UNKNOWN_VOLUME_HEALTH_TYPE"
    );
}
