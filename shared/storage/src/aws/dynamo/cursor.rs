//! A listing's position (its `LastEvaluatedKey`) in the domain's cursor envelope, checked against
//! the listing's plan on the way back.

use std::collections::BTreeMap;

use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use phoenix_domain::ModelId;
use phoenix_domain::ports::{Page, StoreError, StoreResult, cursor as envelope};
use time::OffsetDateTime;

use super::codec::{Item, MEDIA_PREFIX, pk, s};
use super::query::Plan;
use super::table::{PK, SK};

/// The position a cursor holds: the key to resume after, every attribute a string.
type Position = BTreeMap<String, String>;

/// The opaque cursor of `listing` resuming after `key` (a Query's `LastEvaluatedKey`).
pub(super) fn encode_cursor(listing: &str, key: &Item) -> StoreResult<String> {
    let mut position = Position::new();
    for (name, value) in key {
        match value {
            AttributeValue::S(text) => {
                position.insert(name.clone(), text.clone());
            }
            _ => {
                return Err(StoreError::internal(anyhow::anyhow!(
                    "dynamodb Query: LastEvaluatedKey attribute {name} is not a string"
                )));
            }
        }
    }
    envelope::encode(listing, &position)
}

/// A Query's page of `listing`: its items decoded, those past their expiry left out (they wait
/// for the TTL), and the cursor after its `LastEvaluatedKey`. `Limit` counts items before they
/// are left out (and before any filter), so a page may be short, even empty, and still have a
/// next page.
pub(super) fn page_of<T>(
    output: &QueryOutput,
    listing: &str,
    decode: impl Fn(&Item) -> StoreResult<T>,
    live: impl Fn(&T, OffsetDateTime) -> bool,
) -> StoreResult<Page<T>> {
    let now = OffsetDateTime::now_utc();
    let mut items = Vec::with_capacity(output.items().len());
    for item in output.items() {
        let decoded = decode(item)?;
        if live(&decoded, now) {
            items.push(decoded);
        }
    }
    let next_cursor = match output.last_evaluated_key() {
        Some(key) if !key.is_empty() => Some(encode_cursor(listing, key)?),
        _ => None,
    };
    Ok(Page { items, next_cursor })
}

/// Checks that a cursor belongs to `listing`, for a listing that reads nothing (an empty
/// creation range), so that it refuses what any other listing refuses.
pub(super) fn check_cursor(raw: &str, listing: &str) -> StoreResult<()> {
    envelope::decode::<Position>(raw, listing).map(drop)
}

/// The `ExclusiveStartKey` of a cursor this listing returned. Cursors are not signed, so
/// besides the listing they must name exactly the plan's key attributes, in this model's
/// partition and inside the listing's slice.
pub(super) fn decode_cursor(raw: &str, listing: &str, model: &ModelId, plan: &Plan) -> StoreResult<Item> {
    let key: Position = envelope::decode(raw, listing)?;
    let (partition, partition_value) = &plan.partition;
    let (sort, low, high) = &plan.sort;
    let valid = key.keys().map(String::as_str).eq(plan.key_attributes.iter().copied())
        && key.get(PK) == Some(&pk(model))
        && key.get(*partition) == Some(partition_value)
        && key.get(*sort).is_some_and(|value| low <= value && value <= high)
        && (plan.index.is_none() || key.get(SK).is_some_and(|sk| sk.starts_with(MEDIA_PREFIX)));
    if !valid {
        return Err(StoreError::Invalid("cursor is not one this listing returned".to_owned()));
    }
    Ok(key.into_iter().map(|(name, value)| (name, s(value))).collect())
}

#[cfg(test)]
mod tests {
    use phoenix_domain::ports::MediaQuery;
    use phoenix_domain::{MediaId, MediaStatus, Tag};

    use super::super::codec::{gsi1pk, media_key, table_key};
    use super::super::query::plan;
    use super::super::table::{GSI1PK, GSI1SK};
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let model = ModelId::parse("m1").unwrap();
        let query = MediaQuery { tag: Some(Tag::parse("beach").unwrap()), ..MediaQuery::new(1) };
        let range = query.created_ms_range().unwrap();
        let listing = query.listing(&model);
        let tag_plan = plan(&model, &query, range);
        let position = format!("TAG#beach#2024-05-06T07:08:09.123000000Z#{}", MediaId::new());
        let key = table_key(pk(&model), position);
        let cursor = encode_cursor(&listing, &key).unwrap();
        assert_eq!(decode_cursor(&cursor, &listing, &model, &tag_plan).unwrap(), key);

        // Another listing, another model, another index.
        let other_query = MediaQuery { tag: Some(Tag::parse("summer").unwrap()), ..MediaQuery::new(1) };
        let other_plan = plan(&model, &other_query, range);
        let other_listing = other_query.listing(&model);
        assert!(matches!(decode_cursor(&cursor, &other_listing, &model, &other_plan), Err(StoreError::Invalid(_))));
        let other_model = ModelId::parse("m2").unwrap();
        let moved = plan(&other_model, &query, range);
        assert!(matches!(decode_cursor(&cursor, &listing, &other_model, &moved), Err(StoreError::Invalid(_))));
        let status = MediaQuery { status: Some(MediaStatus::Approved), ..MediaQuery::new(1) };
        let status_plan = plan(&model, &status, range);
        assert!(matches!(decode_cursor(&cursor, &listing, &model, &status_plan), Err(StoreError::Invalid(_))));

        // The right listing, but a key that is not one of its positions.
        let forged = |key: Item| encode_cursor(&listing, &key).unwrap();
        let outside = forged(table_key(pk(&model), "TAG#summer#2024#x".to_owned()));
        assert!(matches!(decode_cursor(&outside, &listing, &model, &tag_plan), Err(StoreError::Invalid(_))));
        let elsewhere = forged(table_key(pk(&other_model), "TAG#beach#2024#x".to_owned()));
        assert!(matches!(decode_cursor(&elsewhere, &listing, &model, &tag_plan), Err(StoreError::Invalid(_))));
        let mut extra = table_key(pk(&model), "TAG#beach#2024#x".to_owned());
        extra.insert(GSI1PK.to_owned(), s("x".to_owned()));
        assert!(matches!(decode_cursor(&forged(extra), &listing, &model, &tag_plan), Err(StoreError::Invalid(_))));

        // A status cursor holds the GSI's keys and the table's.
        let status_listing = status.listing(&model);
        let mut gsi_key = media_key(&model, &MediaId::new());
        gsi_key.insert(GSI1PK.to_owned(), s(gsi1pk(&model, MediaStatus::Approved)));
        gsi_key.insert(GSI1SK.to_owned(), s("2024-05-06T07:08:09.123000000Z#x".to_owned()));
        let gsi_cursor = encode_cursor(&status_listing, &gsi_key).unwrap();
        assert_eq!(decode_cursor(&gsi_cursor, &status_listing, &model, &status_plan).unwrap(), gsi_key);

        for garbage in ["!!", "not a cursor", "eyJmb28iOiJiYXIifQ", ""] {
            assert!(matches!(decode_cursor(garbage, &listing, &model, &tag_plan), Err(StoreError::Invalid(_))));
        }
    }
}
