//! Tests: ports of upstream's table tests (one file per upstream concern, same case names).

mod params_test;
mod topology_test;
