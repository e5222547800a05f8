//! The `gateway.networking.k8s.io` API group: only what the CSI sidecars read.

pub mod v1beta1 {
    //! `gateway.networking.k8s.io/v1beta1` ReferenceGrant, as gateway-api v1.6 defines it.

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde::{Deserialize, Serialize};

    use crate::api_resource;

    /// Allows objects of some kinds in other namespaces to refer to objects of some kinds in
    /// this namespace (`kind: ReferenceGrant`). A PersistentVolumeClaim whose
    /// `dataSourceRef.namespace` names another namespace needs one there.
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(default)]
    pub struct ReferenceGrant {
        /// Standard object metadata.
        pub metadata: ObjectMeta,
        /// Who may refer to what.
        pub spec: ReferenceGrantSpec,
    }

    api_resource!(ReferenceGrant, group: "gateway.networking.k8s.io", version: "v1beta1",
        kind: "ReferenceGrant", plural: "referencegrants",
        scope: k8s_openapi::NamespaceResourceScope,
        fields { spec => "spec" });

    /// Who may refer to what: a reference is allowed when its source matches one entry of
    /// `from` and its target one entry of `to`.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct ReferenceGrantSpec {
        /// The objects (by group, kind and namespace) that may refer.
        pub from: Vec<ReferenceGrantFrom>,
        /// The objects in this namespace (by group, kind and optionally name) that may be
        /// referred to.
        pub to: Vec<ReferenceGrantTo>,
    }

    /// Objects that may refer: every object of `group`/`kind` in `namespace`.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct ReferenceGrantFrom {
        /// The API group; `""` is the core group.
        pub group: String,
        /// The kind.
        pub kind: String,
        /// The namespace.
        pub namespace: String,
    }

    /// Objects that may be referred to: every object of `group`/`kind` in the grant's
    /// namespace, or only the one named `name`.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
    #[serde(default)]
    pub struct ReferenceGrantTo {
        /// The API group; `""` is the core group.
        pub group: String,
        /// The kind.
        pub kind: String,
        /// The object's name; unset (or empty) means every object of the kind.
        #[serde(skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
    }
}
