//! Under per-controller leases (`--leader-election-per-controller`), a controller that panics
//! is reported under its own name and restarted; the other keeps working.

mod isolation;

#[test]
fn under_per_controller_leases_one_controller_panics_and_the_other_works() {
    isolation::one_panics_the_other_works(&["--leader-election-per-controller"]);
}
