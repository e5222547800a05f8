//! `snapshot-validation-webhook`: the standalone binary, flag-compatible with
//! external-snapshotter v8.1's `cmd/snapshot-validation-webhook`.

fn main() {
    std::process::exit(snapshot_validation_webhook::main(std::env::args_os()))
}
