//! `init` installs the global subscriber once.

use csi_logging::{Error, LogOptions, init};

#[test]
fn init_twice_is_an_error() {
    init(&LogOptions::default()).expect("first init");
    assert!(matches!(
        init(&LogOptions::default()),
        Err(Error::AlreadyInitialized(_))
    ));
}
