//! Tests: ports of upstream's table tests (one file per upstream concern, same case names).

mod controller_test;
mod delete_test;
mod params_test;
mod source_test;
mod topology_test;
