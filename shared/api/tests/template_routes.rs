//! The deployment routes exactly what the router serves: every operation of the OpenAPI document
//! (generated from the handlers) is an `HttpApi` event of the API function in `template.yaml`,
//! and the template routes nothing else to it; only the public ones skip the authorizer.

use std::collections::BTreeSet;

const TEMPLATE: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml"));

#[test]
fn the_template_routes_every_operation_and_nothing_else() {
    let template: serde_yaml::Value = serde_yaml::from_str(TEMPLATE).expect("template.yaml parses");
    let events = template["Resources"]["MediaApiFunction"]["Properties"]["Events"].as_mapping().expect("API events");
    let mut routed = BTreeSet::new();
    let mut public = BTreeSet::new();
    for event in events.values().filter(|e| e["Type"].as_str() == Some("HttpApi")) {
        let properties = &event["Properties"];
        let route = (
            properties["Method"].as_str().unwrap().to_ascii_uppercase(),
            properties["Path"].as_str().unwrap().to_owned(),
        );
        if properties["Auth"]["Authorizer"].as_str() == Some("NONE") {
            public.insert(route.clone());
        }
        routed.insert(route);
    }

    let document = phoenix_api::openapi::api();
    let mut served = BTreeSet::new();
    let mut open = BTreeSet::new();
    for (path, item) in document.paths.paths.iter() {
        let item = serde_json::to_value(item).unwrap();
        for (method, operation) in item.as_object().unwrap() {
            let route = (method.to_ascii_uppercase(), path.clone());
            if operation.get("security").is_none() {
                open.insert(route.clone());
            }
            served.insert(route);
        }
    }
    // The document itself is served too, without auth.
    let document_route = ("GET".to_owned(), "/openapi.json".to_owned());
    served.insert(document_route.clone());
    open.insert(document_route);

    assert_eq!(routed, served, "template.yaml's API events and the router's operations differ");
    assert_eq!(public, open, "the routes without the JWT authorizer differ from the public operations");
}
