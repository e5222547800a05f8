//! [`Secrets`]: an in-memory [`SecretGetter`] for table tests of code that reads Secrets.

use csi_controller::{ApiError, SecretGetter};
use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;

/// The Secrets a test case has; any other is `NotFound` with the API server's message.
#[derive(Clone, Debug, Default)]
pub struct Secrets(pub Vec<Secret>);

impl SecretGetter for Secrets {
    fn get_secret<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Secret, ApiError>> {
        Box::pin(async move {
            self.0
                .iter()
                .find(|s| {
                    s.metadata.namespace.as_deref() == Some(namespace)
                        && s.metadata.name.as_deref() == Some(name)
                })
                .cloned()
                .ok_or_else(|| ApiError::not_found(csi_controller::resources::SECRETS, name))
        })
    }
}
