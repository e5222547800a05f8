//! Tests: ports of upstream's table tests (one file per upstream file, same case names).

mod topology_test;
