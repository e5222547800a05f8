//! Volume modification (upstream `pkg/modifier`, `pkg/modifycontroller`).
