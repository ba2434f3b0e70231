//! What the media use cases report: the cases a caller can act on, each a variant.

use crate::ids::MediaId;
use crate::library::LibraryError;
use crate::ports::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// No such media (or it was deleted meanwhile); the message says which.
    #[error("{0}")]
    NotFound(String),
    /// The media is not at the version the caller read, or changed while the change was applied.
    #[error("{message}")]
    VersionConflict { message: String, current_version: Option<u64> },
    /// The request itself is wrong (a field out of bounds, nothing to change).
    #[error("{0}")]
    Invalid(String),
    /// The request is fine but the media's state does not allow it.
    #[error("{0}")]
    InvalidState(String),
    #[error(transparent)]
    Store(StoreError),
}

impl MediaError {
    /// A stale expected version: the caller read an older media.
    pub(crate) fn stale(current: u64, expected: u64) -> Self {
        Self::VersionConflict {
            message: format!("the media is at version {current}, not {expected}; read it again and retry"),
            current_version: Some(current),
        }
    }

    /// A store error from reading `media`.
    pub fn reading(media: MediaId) -> impl FnOnce(StoreError) -> Self {
        move |e| match e {
            StoreError::NotFound => Self::NotFound(format!("media {media} not found")),
            other => Self::Store(other),
        }
    }

    /// A store error from a conditional write of a record read moments ago.
    pub(crate) fn writing(e: StoreError) -> Self {
        match e {
            StoreError::VersionConflict { current } => Self::VersionConflict {
                message: "the media changed while this request was applied; read it again and retry".into(),
                current_version: current,
            },
            StoreError::NotFound => Self::NotFound("the media was deleted meanwhile".into()),
            other => Self::Store(other),
        }
    }
}

impl From<LibraryError> for MediaError {
    fn from(e: LibraryError) -> Self {
        match e {
            LibraryError::Invalid(m) => Self::Invalid(m),
            LibraryError::InvalidState(m) => Self::InvalidState(m),
        }
    }
}
