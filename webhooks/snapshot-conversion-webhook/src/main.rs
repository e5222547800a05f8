//! `snapshot-conversion-webhook`: the standalone binary, flag-compatible with
//! external-snapshotter's `cmd/snapshot-conversion-webhook` (v8.7.0).

fn main() {
    std::process::exit(snapshot_conversion_webhook::main(std::env::args_os()))
}
