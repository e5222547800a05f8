//! [`TestNamespace`]: a namespace per test, and the Events in it for failure messages.

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Event, Namespace};
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Client};

/// A namespace for one test, with a generated name.
pub struct TestNamespace {
    /// Its name.
    pub name: String,
    client: Client,
}

impl std::fmt::Debug for TestNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestNamespace")
            .field("name", &self.name)
            .finish()
    }
}

impl TestNamespace {
    /// Creates `e2e-<prefix>-<random>`.
    pub async fn create(client: &Client, prefix: &str) -> anyhow::Result<TestNamespace> {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                generate_name: Some(format!("e2e-{prefix}-")),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        let created = namespaces.create(&PostParams::default(), &ns).await?;
        Ok(TestNamespace {
            name: created.metadata.name.context("namespace without name")?,
            client: client.clone(),
        })
    }

    /// Deletes it (its objects go with it).
    pub async fn delete(self) -> anyhow::Result<()> {
        let namespaces: Api<Namespace> = Api::all(self.client.clone());
        namespaces
            .delete(&self.name, &DeleteParams::default())
            .await?;
        Ok(())
    }

    /// The Events in this namespace, one line each, oldest first: what a failure message needs.
    pub async fn events(&self) -> String {
        describe_events(&self.client, &self.name).await
    }
}

/// The Events of `namespace`, one line each.
pub async fn describe_events(client: &Client, namespace: &str) -> String {
    let events: Api<Event> = Api::namespaced(client.clone(), namespace);
    match events.list(&ListParams::default()).await {
        Ok(list) => {
            let mut lines: Vec<String> = list
                .items
                .iter()
                .map(|e| {
                    format!(
                        "{} {}/{} {}: {}",
                        e.type_.as_deref().unwrap_or("?"),
                        e.involved_object.kind.as_deref().unwrap_or("?"),
                        e.involved_object.name.as_deref().unwrap_or("?"),
                        e.reason.as_deref().unwrap_or("?"),
                        e.message.as_deref().unwrap_or("")
                    )
                })
                .collect();
            if lines.is_empty() {
                lines.push("(no events)".to_string());
            }
            lines.join("\n")
        }
        Err(err) => format!("(listing events failed: {err})"),
    }
}
