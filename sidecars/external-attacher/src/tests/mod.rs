//! Tests: ports of upstream's table tests (one file per upstream file, same case names) and
//! a few of our own (`extra_test.rs`).

mod attacher_test;
mod controller_test;
mod csi_handler_test;
mod extra_test;
mod fake;
mod framework;
mod trivial_handler_test;
mod util_test;
