//! End-to-end tests live in `tests/`; they need the local control plane and are run by
//! `cargo xtask e2e` (which starts it, builds the binaries and sets `CSI_E2E_*`).
