//! Upstream's `pkg/utils` tests (util_test.go, vgs_test.go, pvs_test.go), case names kept.

mod pvs;
mod util;
mod vgs;
