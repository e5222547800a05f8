//! The one error of a translation: what went wrong, in csi-translation-lib's words.

/// A translation that cannot be done; the message is the one `csi-translation-lib` gives.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    message: String,
}

impl Error {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message, as `csi-translation-lib` words it.
    pub fn message(&self) -> &str {
        &self.message
    }
}

/// A translation's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
