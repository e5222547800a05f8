//! The corpus the translation oracle test feeds to Kubernetes' csi-translation-lib and to ours.

pub mod corpus;
