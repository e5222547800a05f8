//! The Kubernetes side of the sidecar runtime, shared by every control-plane controller:
//! rate-limited clients ([`client`](mod@client)), one watch per resource type for the whole
//! process ([`cache`]) and Events ([`events`]). Leader election and work queues are their own
//! crates.

pub mod cache;
pub mod client;
pub mod events;

pub use cache::{Caches, Change, Events, Selector, Store, Subscription, key_of};
pub use client::{ClientOptions, client, load_config};
pub use events::{EventRecorder, EventType, Recorder};
