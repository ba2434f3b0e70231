//! Bad input gets a 4xx with the standard error body, and nothing is written.

use serde_json::{Value, json};

use crate::helpers::{error_code, spawn_app};

#[tokio::test]
async fn bad_upload_requests_are_refused_with_the_right_status() {
    let app = spawn_app().await;
    let token = app.admin_token();
    let url = format!("{}/v1/models/model-a/media/uploads", app.url);
    let send = |body: &'static str, content_type: &'static str| {
        app.client.post(&url).bearer_auth(&token).header("Content-Type", content_type).body(body).send()
    };
    assert_eq!(error_code(send("{not json", "application/json").await.unwrap(), 400).await, "malformed_json");
    assert_eq!(
        error_code(
            send(r#"{"filename":"a","content_type":"image/jpeg","bytes":"10"}"#, "application/json").await.unwrap(),
            400
        )
        .await,
        "invalid_request"
    );
    assert_eq!(
        error_code(
            send(r#"{"filename":"a","content_type":"image/jpeg","bytes":10,"x":1}"#, "application/json").await.unwrap(),
            400
        )
        .await,
        "invalid_request"
    );
    assert_eq!(
        error_code(send(r#"{"filename":"a","content_type":"image/jpeg"}"#, "application/json").await.unwrap(), 400)
            .await,
        "invalid_request"
    );
    assert_eq!(
        error_code(
            send(r#"{"filename":"a","content_type":"image/jpeg","bytes":-1}"#, "application/json").await.unwrap(),
            400
        )
        .await,
        "invalid_request"
    );
    assert_eq!(
        error_code(
            send(r#"{"filename":"a","content_type":"image/jpeg","bytes":10}"#, "text/plain").await.unwrap(),
            415
        )
        .await,
        "unsupported_media_type"
    );
    assert_eq!(
        error_code(
            send(r#"{"filename":"../../etc/passwd","content_type":"image/jpeg","bytes":10}"#, "application/json")
                .await
                .unwrap(),
            400
        )
        .await,
        "invalid_request"
    );

    let too_big = app
        .create_upload(
            &token,
            "model-a",
            &json!({"filename": "a.jpg", "content_type": "image/jpeg", "bytes": 50 * 1024 * 1024 + 1}),
        )
        .await;
    assert_eq!(error_code(too_big, 413).await, "payload_too_large");

    let huge_body = format!(r#"{{"filename":"{}","content_type":"image/jpeg","bytes":10}}"#, "a".repeat(100_000));
    let response = app
        .client
        .post(&url)
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body(huge_body)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(response, 413).await, "payload_too_large");

    let bad_model = app
        .create_upload(&token, "model%20a", &json!({"filename": "a.jpg", "content_type": "image/jpeg", "bytes": 10}))
        .await;
    assert_eq!(error_code(bad_model, 400).await, "invalid_id");

    // None of the above created a record.
    let list: Value = app
        .client
        .get(format!("{}/v1/models/model-a/media", app.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["items"], json!([]));
}

#[tokio::test]
async fn unknown_media_routes_and_ids() {
    let app = spawn_app().await;
    let token = app.admin_token();
    let missing = app.get_media(&token, "model-a", "01jd3k6v2q8m3y7x9t0b5n4c2a").await;
    assert_eq!(error_code(missing, 404).await, "not_found");
    assert_eq!(error_code(app.get_media(&token, "model-a", "not-an-id").await, 400).await, "invalid_id");
    let nowhere = app.client.get(format!("{}/v1/nowhere", app.url)).send().await.unwrap();
    assert_eq!(error_code(nowhere, 404).await, "not_found");
    let wrong_method = app.client.delete(format!("{}/v1/health", app.url)).send().await.unwrap();
    assert_eq!(error_code(wrong_method, 405).await, "method_not_allowed");
}

#[tokio::test]
async fn listing_pages_newest_first_and_refuses_bad_parameters() {
    let app = spawn_app().await;
    let token = app.admin_token();
    let mut created = Vec::new();
    for i in 0..5 {
        let r = app
            .create_upload(
                &token,
                "model-l",
                &json!({"filename": format!("{i}.jpg"), "content_type": "image/jpeg", "bytes": 10}),
            )
            .await;
        created.push(r.json::<Value>().await.unwrap()["media_id"].as_str().unwrap().to_owned());
    }
    created.reverse();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("{}/v1/models/model-l/media?limit=2&status=uploading", app.url);
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={c}"));
        }
        let page: Value = app.client.get(url).bearer_auth(&token).send().await.unwrap().json().await.unwrap();
        seen.extend(page["items"].as_array().unwrap().iter().map(|i| i["media_id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen, created);
    for query in ["limit=0", "limit=101", "limit=x", "status=lost", "cursor=%%%", "unknown=1"] {
        let response = app
            .client
            .get(format!("{}/v1/models/model-l/media?{query}", app.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
    }
}

#[tokio::test]
async fn the_openapi_document_is_served_without_auth_and_matches_the_checked_in_copy() {
    let app = spawn_app().await;
    let response = app.client.get(format!("{}/openapi.json", app.url)).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let served = response.text().await.unwrap();
    let checked_in = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json")).unwrap();
    assert_eq!(served, checked_in);
    let doc: Value = serde_json::from_str(&served).unwrap();
    for path in ["/v1/models/{model_id}/media/uploads", "/v1/models/{model_id}/media/{media_id}", "/v1/health"] {
        assert!(doc["paths"][path].is_object(), "{path} missing from the document");
    }
}

/// A value of the wrong type names its field, for a form to show next to the right input.
#[tokio::test]
async fn a_wrong_value_names_its_field() {
    let app = crate::helpers::spawn_app().await;
    let token = app.model_token("m1");
    let response = app
        .create_upload(
            &token,
            "m1",
            &serde_json::json!({"filename": "a.jpg", "content_type": "image/jpeg", "bytes": "ten"}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    assert_eq!(body["error"]["details"]["field"], "bytes", "{body}");
    assert!(!body["error"]["message"].as_str().unwrap().contains("line 1"), "{body}");
}

/// A grid asks for the few fields it shows; everything else stays on the server.
#[tokio::test]
async fn a_list_can_name_the_fields_it_needs() {
    let app = crate::helpers::spawn_app().await;
    let token = app.model_token("m1");
    let photo = std::fs::read(crate::helpers::testdata("photos/portrait-6mp.jpg")).unwrap();
    let media = app.upload(&token, "m1", photo, "image/jpeg").await;
    app.wait_processed(&token, "m1", &media).await;
    let list = |query: &'static str| {
        app.client.get(format!("{}/v1/models/m1/media?{query}", app.url)).bearer_auth(&token).send()
    };
    let full: serde_json::Value = list("limit=5").await.unwrap().json().await.unwrap();
    let lean: serde_json::Value = list("limit=5&fields=status,placeholder").await.unwrap().json().await.unwrap();
    let item = lean["items"][0].as_object().unwrap();
    let mut keys: Vec<&str> = item.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["media_id", "placeholder", "status"], "{lean}");
    assert_eq!(item["placeholder"], full["items"][0]["placeholder"]);
    assert!(lean.to_string().len() * 4 < full.to_string().len(), "a lean page is much smaller");

    let response = list("fields=status,password").await.unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["details"]["field"], "fields", "{body}");
}
