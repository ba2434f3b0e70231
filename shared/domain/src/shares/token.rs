//! Share tokens: `{link_id}.{key_id}.{signature}`, the signature an HMAC-SHA256 of the link id
//! under the named key (base64url, no padding). The configuration holds a key ring: the first
//! key signs, every key verifies, so a key is rotated by putting a new one first and removing
//! the old one once the links it signed may end (removing a key ends every link it signed).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::ids::ShareLinkId;

type HmacSha256 = Hmac<Sha256>;

/// What a token's signature covers, besides the link id: a version, so another use of the keys
/// can never produce a valid token.
const CONTEXT: &[u8] = b"phoenix4ge-share-link-v1:";
/// What a client address's hash covers, besides the address.
const CLIENT_CONTEXT: &[u8] = b"phoenix4ge-share-client-v1:";
/// Keys shorter than this are refused (HMAC-SHA256 keys should carry 256 bits).
pub const MIN_KEY_BYTES: usize = 32;
/// A key id is 1 to this many characters of a-z and 0-9.
pub const MAX_KEY_ID_CHARS: usize = 16;

/// The signing keys, the first signs; `Debug` never shows a key.
#[derive(Clone)]
pub struct ShareKeys {
    keys: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for ShareKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareKeys").field("key_ids", &self.keys.iter().map(|(id, _)| id).collect::<Vec<_>>()).finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no share-link key is configured")]
    Empty,
    #[error("share-link key #{0} must be `key_id:base64`, the id 1 to {MAX_KEY_ID_CHARS} characters of a-z and 0-9")]
    Malformed(usize),
    #[error("share-link key {0:?} is not base64")]
    NotBase64(String),
    #[error("share-link key {0:?} is shorter than {MIN_KEY_BYTES} bytes")]
    TooShort(String),
    #[error("share-link key id {0:?} appears twice")]
    Duplicate(String),
}

/// Why a token was refused (all alike to the holder: not found).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's key is not configured")]
    UnknownKey,
    #[error("the token's signature does not match")]
    BadSignature,
}

impl ShareKeys {
    /// Parses `key_id:base64key[,key_id:base64key…]` (the configuration's form), first signing.
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        let mut keys: Vec<(String, Vec<u8>)> = Vec::new();
        for (n, entry) in raw.split(',').map(str::trim).filter(|e| !e.is_empty()).enumerate() {
            let (id, key) = entry.split_once(':').ok_or(KeyError::Malformed(n + 1))?;
            if id.is_empty()
                || id.len() > MAX_KEY_ID_CHARS
                || !id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            {
                return Err(KeyError::Malformed(n + 1));
            }
            let key = STANDARD
                .decode(key.trim())
                .or_else(|_| URL_SAFE_NO_PAD.decode(key.trim()))
                .map_err(|_| KeyError::NotBase64(id.to_owned()))?;
            if key.len() < MIN_KEY_BYTES {
                return Err(KeyError::TooShort(id.to_owned()));
            }
            if keys.iter().any(|(k, _)| k == id) {
                return Err(KeyError::Duplicate(id.to_owned()));
            }
            keys.push((id.to_owned(), key));
        }
        if keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(Self { keys })
    }

    fn mac(key: &[u8], context: &[u8], message: &[u8]) -> HmacSha256 {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = HmacSha256::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(context);
        mac.update(message);
        mac
    }

    /// The token for `link` under the signing key.
    pub fn sign(&self, link: &ShareLinkId) -> String {
        let (id, key) = &self.keys[0];
        let tag = Self::mac(key, CONTEXT, link.to_string().as_bytes()).finalize().into_bytes();
        format!("{link}.{id}.{}", URL_SAFE_NO_PAD.encode(tag))
    }

    /// The link a token names, if its signature verifies (in constant time) under its key.
    pub fn verify(&self, token: &str) -> Result<ShareLinkId, TokenError> {
        let mut parts = token.split('.');
        let (Some(link), Some(key_id), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let link = ShareLinkId::parse(link).map_err(|_| TokenError::Malformed)?;
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| TokenError::Malformed)?;
        let (_, key) = self.keys.iter().find(|(id, _)| id == key_id).ok_or(TokenError::UnknownKey)?;
        Self::mac(key, CONTEXT, link.to_string().as_bytes())
            .verify_slice(&signature)
            .map_err(|_| TokenError::BadSignature)?;
        Ok(link)
    }

    /// A keyed hash (32 hex characters) of a client's address: stable while the signing key is.
    pub fn client_hash(&self, address: &str) -> String {
        let tag = Self::mac(&self.keys[0].1, CLIENT_CONTEXT, address.as_bytes()).finalize().into_bytes();
        tag[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}
