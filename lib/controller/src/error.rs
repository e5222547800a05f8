//! [`ApiError`]: an error from the API server or a watch cache, carrying the message client-go
//! would produce, because upstream controllers store that message verbatim (for example in a
//! VolumeAttachment's `attachError`) and users read it there.
//!
//! Owns the message formats of client-go's `NewNotFound` / `NewForbidden` and the resource
//! names its listers and clients use ([`resources`]). It does not decide what a controller does
//! with an error.

/// The resource names used in error messages, as client-go spells them.
pub mod resources {
    /// What the PersistentVolume lister reports (`v1.Resource("persistentvolume")`).
    pub const PERSISTENT_VOLUME_LISTER: &str = "persistentvolume";
    /// What the PersistentVolumeClaim lister reports (`v1.Resource("persistentvolumeclaim")`).
    pub const PERSISTENT_VOLUME_CLAIM_LISTER: &str = "persistentvolumeclaim";
    /// What the CSINode lister reports (`storagev1.Resource("csinode")`).
    pub const CSI_NODE_LISTER: &str = "csinode.storage.k8s.io";
    /// What the VolumeAttachment lister reports (`storagev1.Resource("volumeattachment")`).
    pub const VOLUME_ATTACHMENT_LISTER: &str = "volumeattachment.storage.k8s.io";
    /// PersistentVolumes, as the API server names them.
    pub const PERSISTENT_VOLUMES: &str = "persistentvolumes";
    /// PersistentVolumeClaims, as the API server names them.
    pub const PERSISTENT_VOLUME_CLAIMS: &str = "persistentvolumeclaims";
    /// VolumeAttachments, as the API server names them.
    pub const VOLUME_ATTACHMENTS: &str = "volumeattachments.storage.k8s.io";
    /// Secrets, as the API server names them.
    pub const SECRETS: &str = "secrets";
}

/// An error from the API server or a cache, with the API server's (or client-go's) message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    /// The HTTP status code (0 when the request never got an answer).
    pub code: u16,
    /// The machine-readable reason (`NotFound`, `Forbidden`, ...), empty when unknown.
    pub reason: String,
    /// The human-readable message.
    pub message: String,
}

impl ApiError {
    /// client-go's `NewNotFound`: `<resource> "<name>" not found`.
    pub fn not_found(qualified_resource: &str, name: &str) -> Self {
        ApiError {
            code: 404,
            reason: "NotFound".into(),
            message: format!("{qualified_resource} {name:?} not found"),
        }
    }

    /// client-go's `NewForbidden`: `<resource> "<name>" is forbidden: <err>`.
    pub fn forbidden(qualified_resource: &str, name: &str, err: &str) -> Self {
        ApiError {
            code: 403,
            reason: "Forbidden".into(),
            message: format!("{qualified_resource} {name:?} is forbidden: {err}"),
        }
    }

    /// client-go's `NewConflict`: `Operation cannot be fulfilled on <resource> "<name>": <err>`.
    pub fn conflict(qualified_resource: &str, name: &str, err: &str) -> Self {
        ApiError {
            code: 409,
            reason: "Conflict".into(),
            message: format!(
                "Operation cannot be fulfilled on {qualified_resource} {name:?}: {err}"
            ),
        }
    }

    /// A 422 `Invalid` with `message`: what the API server answers to a patch it cannot apply.
    pub fn invalid(message: impl Into<String>) -> Self {
        ApiError {
            code: 422,
            reason: "Invalid".into(),
            message: message.into(),
        }
    }

    /// An error that is not an API status (transport, encoding, ...).
    pub fn other(message: impl Into<String>) -> Self {
        ApiError {
            code: 0,
            reason: String::new(),
            message: message.into(),
        }
    }

    /// Whether this is a 404 (`apierrors.IsNotFound`).
    pub fn is_not_found(&self) -> bool {
        self.code == 404 || self.reason == "NotFound"
    }

    /// Whether this is a 409 `Conflict` (`apierrors.IsConflict`): someone else changed the
    /// object, or a JSON patch `test` failed on the server. A 409 `AlreadyExists` is not.
    pub fn is_conflict(&self) -> bool {
        self.reason == "Conflict" || (self.reason.is_empty() && self.code == 409)
    }

    /// client-go's `NewAlreadyExists`: `<resource> "<name>" already exists`.
    pub fn already_exists(qualified_resource: &str, name: &str) -> Self {
        ApiError {
            code: 409,
            reason: "AlreadyExists".into(),
            message: format!("{qualified_resource} {name:?} already exists"),
        }
    }

    /// Whether this is `AlreadyExists` (`apierrors.IsAlreadyExists`): a create of an object
    /// that exists.
    pub fn is_already_exists(&self) -> bool {
        self.reason == "AlreadyExists"
    }
}

impl From<kube::Error> for ApiError {
    fn from(err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) => ApiError {
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            other => ApiError::other(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_match_client_go() {
        assert_eq!(
            ApiError::not_found(resources::PERSISTENT_VOLUME_LISTER, "pv1").to_string(),
            "persistentvolume \"pv1\" not found"
        );
        assert_eq!(
            ApiError::not_found(resources::CSI_NODE_LISTER, "node1").to_string(),
            "csinode.storage.k8s.io \"node1\" not found"
        );
        assert_eq!(
            ApiError::forbidden(resources::VOLUME_ATTACHMENTS, "pv1-node1", "Mock error")
                .to_string(),
            "volumeattachments.storage.k8s.io \"pv1-node1\" is forbidden: Mock error"
        );
        assert_eq!(
            ApiError::conflict(
                resources::PERSISTENT_VOLUMES,
                "pv1",
                "the object has been modified; please apply your changes to the latest version and try again"
            )
            .to_string(),
            "Operation cannot be fulfilled on persistentvolumes \"pv1\": the object has been modified; please apply your changes to the latest version and try again"
        );
        assert!(ApiError::not_found("x", "y").is_not_found());
        assert!(!ApiError::forbidden("x", "y", "z").is_not_found());
        assert!(ApiError::conflict("x", "y", "z").is_conflict());
    }
}
