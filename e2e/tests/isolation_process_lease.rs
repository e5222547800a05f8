//! Under the one lease of `csi-sidecars` (`--leader-election`), a controller that panics is
//! reported under its own name and restarted; the other keeps working.

mod isolation;

#[test]
fn under_the_process_lease_one_controller_panics_and_the_other_works() {
    isolation::one_panics_the_other_works(&[]);
}
