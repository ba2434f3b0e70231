//! The table's definition, once, as data (keys, attributes, indexes, TTL, billing), and its creation.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use aws_smithy_types::error::operation::BuildError;

pub(crate) const PK: &str = "PK";
pub(crate) const SK: &str = "SK";
pub(crate) const GSI1: &str = "GSI1";
pub(crate) const GSI1PK: &str = "GSI1PK";
pub(crate) const GSI1SK: &str = "GSI1SK";
pub(crate) const GSI2: &str = "GSI2";
pub(crate) const GSI2PK: &str = "GSI2PK";
pub(crate) const GSI2SK: &str = "GSI2SK";
pub(crate) const GSI3: &str = "GSI3";
pub(crate) const GSI3PK: &str = "GSI3PK";
pub(crate) const GSI3SK: &str = "GSI3SK";
pub(crate) const TTL_ATTRIBUTE: &str = "expires_at_epoch";

/// A key: its partition (`HASH`) attribute and its sort (`RANGE`) attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeySpec {
    pub hash: &'static str,
    pub range: &'static str,
}

/// A global secondary index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSpec {
    pub name: &'static str,
    pub keys: KeySpec,
    pub projection: ProjectionType,
}

/// Everything about the table that the code relies on. `template.yaml` declares the same table
/// (a unit test compares them) and [`create_table`] creates it from this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub keys: KeySpec,
    /// Every attribute that is a key of the table or of an index, with its type.
    pub attributes: &'static [(&'static str, ScalarAttributeType)],
    pub indexes: &'static [IndexSpec],
    /// The number attribute (unix seconds) that DynamoDB's TTL deletes items by.
    pub ttl_attribute: &'static str,
    pub billing: BillingMode,
}

/// The table: `GSI1` serves media status listings and a model's jobs, the sparse `GSI2` media
/// category listings and a model's jobs in one status, the sparse `GSI3` (job records only) jobs
/// in one status across models. All project ALL, so a listing is one Query of full records.
pub const TABLE: TableSpec = TableSpec {
    keys: KeySpec { hash: PK, range: SK },
    attributes: &[
        (PK, ScalarAttributeType::S),
        (SK, ScalarAttributeType::S),
        (GSI1PK, ScalarAttributeType::S),
        (GSI1SK, ScalarAttributeType::S),
        (GSI2PK, ScalarAttributeType::S),
        (GSI2SK, ScalarAttributeType::S),
        (GSI3PK, ScalarAttributeType::S),
        (GSI3SK, ScalarAttributeType::S),
    ],
    indexes: &[
        IndexSpec { name: GSI1, keys: KeySpec { hash: GSI1PK, range: GSI1SK }, projection: ProjectionType::All },
        IndexSpec { name: GSI2, keys: KeySpec { hash: GSI2PK, range: GSI2SK }, projection: ProjectionType::All },
        IndexSpec { name: GSI3, keys: KeySpec { hash: GSI3PK, range: GSI3SK }, projection: ProjectionType::All },
    ],
    ttl_attribute: TTL_ATTRIBUTE,
    billing: BillingMode::PayPerRequest,
};

impl KeySpec {
    fn schema(&self) -> Result<Vec<KeySchemaElement>, BuildError> {
        [(self.hash, KeyType::Hash), (self.range, KeyType::Range)]
            .into_iter()
            .map(|(name, key_type)| KeySchemaElement::builder().attribute_name(name).key_type(key_type).build())
            .collect()
    }
}

/// Creates the table of [`TABLE`] with its indexes and TTL, as the template does.
pub async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) -> anyhow::Result<()> {
    let spec = &TABLE;
    let mut request = client
        .create_table()
        .table_name(table)
        .billing_mode(spec.billing.clone())
        .set_key_schema(Some(spec.keys.schema()?));
    for (name, attribute_type) in spec.attributes {
        request = request.attribute_definitions(
            AttributeDefinition::builder().attribute_name(*name).attribute_type(attribute_type.clone()).build()?,
        );
    }
    for index in spec.indexes {
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .set_key_schema(Some(index.keys.schema()?))
                .projection(Projection::builder().projection_type(index.projection.clone()).build())
                .build()?,
        );
    }
    request.send().await?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            TimeToLiveSpecification::builder().attribute_name(spec.ttl_attribute).enabled(true).build()?,
        )
        .send()
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_yaml::Value;

    use super::*;

    const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");

    fn text(value: &Value, what: &str) -> String {
        value.as_str().unwrap_or_else(|| panic!("{what} is not a string: {value:?}")).to_owned()
    }

    /// A `KeySchema` list as (attribute, key type) pairs, in order.
    fn key_schema(value: &Value, what: &str) -> Vec<(String, String)> {
        let elements = value.as_sequence().unwrap_or_else(|| panic!("{what}.KeySchema is not a list: {value:?}"));
        elements.iter().map(|e| (text(&e["AttributeName"], what), text(&e["KeyType"], what))).collect()
    }

    fn expected_keys(keys: &KeySpec) -> Vec<(String, String)> {
        vec![
            (keys.hash.to_owned(), KeyType::Hash.as_str().to_owned()),
            (keys.range.to_owned(), KeyType::Range.as_str().to_owned()),
        ]
    }

    #[test]
    fn the_template_declares_this_table() {
        let raw = std::fs::read_to_string(TEMPLATE).expect("read template.yaml");
        // The whole template, CloudFormation's short tags (`!Ref`, `!Sub`, `!If`...) and all.
        let template: Value = serde_yaml::from_str(&raw).expect("template.yaml parses");
        let resources = template["Resources"].as_mapping().expect("the template has Resources");
        let tables: Vec<(&Value, &Value)> =
            resources.iter().filter(|(_, r)| r["Type"].as_str() == Some("AWS::DynamoDB::Table")).collect();
        assert_eq!(tables.len(), 1, "the template declares one table");
        let (name, table) = tables[0];
        let props = &table["Properties"];
        let what = name.as_str().unwrap_or("the table").to_owned();

        assert_eq!(text(&props["BillingMode"], &what), TABLE.billing.as_str(), "billing");
        assert_eq!(key_schema(&props["KeySchema"], &what), expected_keys(&TABLE.keys), "the table's key schema");

        let declared: BTreeMap<String, String> = props["AttributeDefinitions"]
            .as_sequence()
            .expect("AttributeDefinitions is a list")
            .iter()
            .map(|d| (text(&d["AttributeName"], &what), text(&d["AttributeType"], &what)))
            .collect();
        let expected: BTreeMap<String, String> =
            TABLE.attributes.iter().map(|(name, t)| ((*name).to_owned(), t.as_str().to_owned())).collect();
        assert_eq!(declared, expected, "attribute definitions and their types");
        assert_eq!(declared.len(), props["AttributeDefinitions"].as_sequence().map_or(0, Vec::len), "no repeats");

        let indexes: BTreeMap<String, &Value> = props["GlobalSecondaryIndexes"]
            .as_sequence()
            .expect("GlobalSecondaryIndexes is a list")
            .iter()
            .map(|index| (text(&index["IndexName"], &what), index))
            .collect();
        let names: Vec<&str> = indexes.keys().map(String::as_str).collect();
        let mut expected_names: Vec<&str> = TABLE.indexes.iter().map(|i| i.name).collect();
        expected_names.sort_unstable();
        assert_eq!(names, expected_names, "global secondary indexes");
        for spec in TABLE.indexes {
            let index = indexes[spec.name];
            let what = format!("{what}.{}", spec.name);
            assert_eq!(key_schema(&index["KeySchema"], &what), expected_keys(&spec.keys), "{what}'s key schema");
            let projection = &index["Projection"];
            assert_eq!(text(&projection["ProjectionType"], &what), spec.projection.as_str(), "{what}'s projection");
            assert!(projection.get("NonKeyAttributes").is_none(), "{what} projects no list of attributes");
        }
        assert!(props.get("LocalSecondaryIndexes").is_none(), "no local secondary indexes");

        let ttl = &props["TimeToLiveSpecification"];
        assert_eq!(text(&ttl["AttributeName"], &what), TABLE.ttl_attribute, "the TTL attribute");
        assert_eq!(ttl["Enabled"].as_bool(), Some(true), "TTL is enabled");
    }
}
