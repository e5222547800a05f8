//! Volume expansion (upstream `pkg/resizer`, `pkg/controller`, `pkg/util`).
