//! upstream's `csi_modifier_test.go`.

use std::time::Duration;

use super::fakes::*;
use crate::modify::{Modifier, NewModifierError};

#[tokio::test]
async fn test_new_modifier() {
    let cases = [
        ("Create succeeded.", true, None),
        (
            "Controller modify not supported.",
            false,
            Some(NewModifierError::NotSupported),
        ),
    ];
    for (name, supports, expected) in cases {
        let result = Modifier::new(
            FakeDriver::new(supports),
            FakeCluster::new(),
            Duration::ZERO,
            "mock-driver",
        )
        .await;
        assert_eq!(result.err(), expected, "{name}");
    }
}
