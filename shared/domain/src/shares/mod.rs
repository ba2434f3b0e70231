//! Share links: signed, expiring, revocable links to one gallery (private ones included) for a
//! casting director or a client. A link is a record (who made it, until when, for whom, revoked
//! or not); its token names the record and carries an HMAC of the link id under a key from the
//! configuration, so a token cannot be guessed or altered, and revoking the record ends the link
//! at once whatever the token says.

mod token;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::ids::{GalleryId, ModelId, ShareLinkId};
use crate::ports::{Page, ShareLinkStore, StoreError, StoreResult};

pub use token::{KeyError, ShareKeys, TokenError};

/// A link lives at most this long (a year); a longer one is refused.
pub const MAX_LINK_LIFETIME: Duration = Duration::days(365);
/// ... and at least this long: an expiry in the past or the next minute is a mistake.
pub const MIN_LINK_LIFETIME: Duration = Duration::minutes(1);
/// The owner can still read an ended link and its accesses this long after it expired; then
/// the store drops them (DynamoDB's TTL, the local store's sweep on read).
pub const LINK_RETENTION: Duration = Duration::days(90);
/// At most this many characters name a recipient.
pub const MAX_RECIPIENT_CHARS: usize = 200;
/// A user agent is kept up to this many characters.
pub const MAX_USER_AGENT_CHARS: usize = 512;

/// A share link's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareLink {
    pub link_id: ShareLinkId,
    pub model_id: ModelId,
    pub gallery_id: GalleryId,
    /// The token's subject that made it.
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    #[serde(default)]
    pub allow_download: bool,
    #[serde(default, with = "time::serde::rfc3339::option", skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<String>,
    /// Incremented by every write; writes are conditional on it.
    pub version: u64,
}

/// Where a link stands at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Active,
    Expired,
    Revoked,
}

impl ShareLink {
    pub fn state(&self, now: OffsetDateTime) -> LinkState {
        if self.revoked_at.is_some() {
            LinkState::Revoked
        } else if now >= self.expires_at {
            LinkState::Expired
        } else {
            LinkState::Active
        }
    }

    /// When the store may drop the record and its accesses.
    pub fn retained_until(&self) -> OffsetDateTime {
        self.expires_at + LINK_RETENTION
    }
}

/// One opening of a link. The client's address is never stored, only a keyed hash of it, so
/// the owner can tell repeat visits apart without learning where anyone was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShareAccess {
    pub link_id: ShareLinkId,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// A keyed hash (hex) of the client's address.
    pub client_hash: String,
}

/// What the owner asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewShareLink {
    pub expires_at: OffsetDateTime,
    pub recipient: Option<String>,
    pub allow_download: bool,
}

/// Why a share-link use case refused.
#[derive(Debug, thiserror::Error)]
pub enum ShareError {
    /// The request's fields break a rule (`field` names the one).
    #[error("{message}")]
    Invalid { field: &'static str, message: String },
    /// No such link for this model (or a token that does not verify): nothing is said of what exists.
    #[error("no such share link")]
    NotFound,
    /// The link verified but has expired or was revoked.
    #[error("this share link is no longer valid")]
    Gone,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks `request` at `now`: the expiry within [`MIN_LINK_LIFETIME`]..=[`MAX_LINK_LIFETIME`],
/// the recipient short and printable.
pub fn check_request(request: &NewShareLink, now: OffsetDateTime) -> Result<(), ShareError> {
    if request.expires_at < now + MIN_LINK_LIFETIME {
        return Err(ShareError::Invalid {
            field: "expires_at",
            message: "expires_at must be at least a minute in the future".into(),
        });
    }
    if request.expires_at > now + MAX_LINK_LIFETIME {
        return Err(ShareError::Invalid {
            field: "expires_at",
            message: format!("a share link lives at most {} days", MAX_LINK_LIFETIME.whole_days()),
        });
    }
    if let Some(recipient) = &request.recipient {
        let chars = recipient.chars().count();
        if chars == 0 || chars > MAX_RECIPIENT_CHARS || recipient.chars().any(char::is_control) {
            return Err(ShareError::Invalid {
                field: "recipient",
                message: format!("recipient must be 1 to {MAX_RECIPIENT_CHARS} printable characters"),
            });
        }
    }
    Ok(())
}

/// Makes a link to `gallery` (whose ownership by `model` the caller has checked) and its token.
pub async fn create_link(
    store: &dyn ShareLinkStore,
    keys: &ShareKeys,
    model: &ModelId,
    gallery: &GalleryId,
    request: NewShareLink,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(ShareLink, String), ShareError> {
    check_request(&request, now)?;
    let link = ShareLink {
        link_id: ShareLinkId::new(),
        model_id: model.clone(),
        gallery_id: gallery.clone(),
        created_by: actor.to_owned(),
        created_at: now,
        expires_at: request.expires_at,
        recipient: request.recipient,
        allow_download: request.allow_download,
        revoked_at: None,
        revoked_by: None,
        version: 1,
    };
    store.create_link(&link).await?;
    let token = keys.sign(&link.link_id);
    Ok((link, token))
}

/// One of `model`'s links.
pub async fn get_link(store: &dyn ShareLinkStore, model: &ModelId, id: &ShareLinkId) -> Result<ShareLink, ShareError> {
    match store.get_link(id).await {
        Ok(link) if &link.model_id == model => Ok(link),
        Ok(_) | Err(StoreError::NotFound) => Err(ShareError::NotFound),
        Err(e) => Err(e.into()),
    }
}

/// Revokes one of `model`'s links (again: no change). The link ends at once: the next opening
/// reads the record.
pub async fn revoke_link(
    store: &dyn ShareLinkStore,
    model: &ModelId,
    id: &ShareLinkId,
    actor: &str,
    now: OffsetDateTime,
) -> Result<ShareLink, ShareError> {
    revoke(store, model, id, actor, now).await.map(|(link, _)| link)
}

/// The link after revoking it, and whether this call did.
async fn revoke(
    store: &dyn ShareLinkStore,
    model: &ModelId,
    id: &ShareLinkId,
    actor: &str,
    now: OffsetDateTime,
) -> Result<(ShareLink, bool), ShareError> {
    for _ in 0..5 {
        let mut link = get_link(store, model, id).await?;
        if link.revoked_at.is_some() {
            return Ok((link, false));
        }
        link.revoked_at = Some(now);
        link.revoked_by = Some(actor.to_owned());
        link.version += 1;
        match store.update_link(&link).await {
            Ok(()) => return Ok((link, true)),
            Err(StoreError::VersionConflict { .. }) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(StoreError::unavailable(anyhow::anyhow!("the link kept changing while it was revoked")).into())
}

/// Revokes every live link that shows one of `model`'s galleries (when a model leaves the
/// agency); returns how many it revoked.
pub async fn revoke_model_links(
    store: &dyn ShareLinkStore,
    model: &ModelId,
    actor: &str,
    now: OffsetDateTime,
) -> Result<u64, ShareError> {
    let mut revoked = 0;
    let mut cursor = None;
    loop {
        let page = store.list_links(model, None, *crate::ports::bounds::PAGE_SIZE.end(), cursor).await?;
        for link in page.items.iter().filter(|l| l.state(now) == LinkState::Active) {
            if revoke(store, model, &link.link_id, actor, now).await?.1 {
                revoked += 1;
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(revoked),
        }
    }
}

/// The link a presented token names, if it verifies and the link is active at `now`:
/// `NotFound` for a token that does not verify or names no link, `Gone` for one that expired
/// or was revoked.
pub async fn open_link(
    store: &dyn ShareLinkStore,
    keys: &ShareKeys,
    token: &str,
    now: OffsetDateTime,
) -> Result<ShareLink, ShareError> {
    let id = keys.verify(token).map_err(|_| ShareError::NotFound)?;
    let link = match store.get_link(&id).await {
        Ok(link) => link,
        Err(StoreError::NotFound) => return Err(ShareError::NotFound),
        Err(e) => return Err(e.into()),
    };
    match link.state(now) {
        LinkState::Active => Ok(link),
        LinkState::Expired | LinkState::Revoked => Err(ShareError::Gone),
    }
}

/// Records an opening of `link` by a client at `address` (hashed under the current key).
pub async fn record_access(
    store: &dyn ShareLinkStore,
    keys: &ShareKeys,
    link: &ShareLink,
    address: &str,
    user_agent: Option<&str>,
    now: OffsetDateTime,
) -> StoreResult<ShareAccess> {
    let access = ShareAccess {
        link_id: link.link_id,
        at: now,
        user_agent: user_agent.map(|ua| ua.chars().filter(|c| !c.is_control()).take(MAX_USER_AGENT_CHARS).collect()),
        client_hash: keys.client_hash(address),
    };
    store.record_access(link, &access).await?;
    Ok(access)
}

/// A page of one of `model`'s links' accesses, newest first.
pub async fn list_accesses(
    store: &dyn ShareLinkStore,
    model: &ModelId,
    id: &ShareLinkId,
    limit: usize,
    cursor: Option<String>,
) -> Result<Page<ShareAccess>, ShareError> {
    get_link(store, model, id).await?;
    Ok(store.list_accesses(id, limit, cursor).await?)
}

#[cfg(test)]
mod tests;
