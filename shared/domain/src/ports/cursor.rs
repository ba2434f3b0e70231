//! The cursor envelope both metadata adapters hand out: the listing it belongs to and the
//! adapter's own position, as URL-safe base64 of JSON. A cursor is only valid for the listing
//! that returned it ([`super::MediaQuery::listing`]); anything else is `Invalid`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{StoreError, StoreResult};

#[derive(serde::Serialize, serde::Deserialize)]
struct Envelope<L, P> {
    listing: L,
    #[serde(rename = "after")]
    position: P,
}

/// Encodes `position` for `listing`.
pub fn encode<P: Serialize>(listing: &str, position: &P) -> StoreResult<String> {
    let json = serde_json::to_vec(&Envelope { listing, position }).map_err(StoreError::internal)?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

/// The position in a cursor that `listing` returned.
pub fn decode<P: DeserializeOwned>(raw: &str, listing: &str) -> StoreResult<P> {
    let invalid = || StoreError::Invalid("cursor is not one this listing returned".to_owned());
    let json = URL_SAFE_NO_PAD.decode(raw.trim_end_matches('=')).map_err(|_| invalid())?;
    let envelope: Envelope<String, P> = serde_json::from_slice(&json).map_err(|_| invalid())?;
    if envelope.listing != listing {
        return Err(invalid());
    }
    Ok(envelope.position)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_opens_only_for_its_listing() {
        let raw = encode("m1|approved", &"01abc").unwrap();
        assert_eq!(decode::<String>(&raw, "m1|approved").unwrap(), "01abc");
        assert!(matches!(decode::<String>(&raw, "m1|rejected"), Err(StoreError::Invalid(_))));
        for garbage in ["", "!!", "e30", &URL_SAFE_NO_PAD.encode(b"[1,2]")] {
            assert!(matches!(decode::<String>(garbage, "m1|approved"), Err(StoreError::Invalid(_))));
        }
    }
}
