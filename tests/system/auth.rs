//! Tokens: unknown, forged or expired ones are refused; models act only on themselves.

use jsonwebtoken::{EncodingKey, Header};
use phoenix_api::DevClaims;
use serde_json::json;

use crate::helpers::{error_code, exp, spawn_app};

const MEDIA: &str = "01jd3k6v2q8m3y7x9t0b5n4c2a";

#[tokio::test]
async fn health_needs_no_token() {
    let app = spawn_app().await;
    let response = app.client.get(format!("{}/v1/health", app.url)).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn missing_unknown_forged_and_expired_tokens_are_refused() {
    let app = spawn_app().await;
    let url = format!("{}/v1/models/model-a/media/{MEDIA}", app.url);
    assert_eq!(error_code(app.client.get(&url).send().await.unwrap(), 401).await, "unauthorized");
    assert_eq!(
        error_code(app.client.get(&url).bearer_auth("not-a-jwt").send().await.unwrap(), 401).await,
        "unauthorized"
    );
    let admin = DevClaims { sub: "x".into(), groups: vec!["admin".into()], model_id: None, exp: exp() };
    let forged =
        jsonwebtoken::encode(&Header::default(), &admin, &EncodingKey::from_secret(b"another-secret")).unwrap();
    assert_eq!(error_code(app.client.get(&url).bearer_auth(forged).send().await.unwrap(), 401).await, "unauthorized");
    let expired = app.system.token(&DevClaims { exp: 1_000_000_000, ..admin.clone() });
    assert_eq!(error_code(app.client.get(&url).bearer_auth(expired).send().await.unwrap(), 401).await, "unauthorized");
    let none = jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS512),
        &admin,
        &EncodingKey::from_secret(b"test-secret"),
    )
    .unwrap();
    assert_eq!(error_code(app.client.get(&url).bearer_auth(none).send().await.unwrap(), 401).await, "unauthorized");
    let roleless = app.system.token(&DevClaims { groups: vec![], ..admin });
    assert_eq!(error_code(app.client.get(&url).bearer_auth(roleless).send().await.unwrap(), 403).await, "forbidden");
}

#[tokio::test]
async fn a_model_acts_only_on_itself_and_an_admin_on_all() {
    let app = spawn_app().await;
    let body = json!({"filename": "a.jpg", "content_type": "image/jpeg", "bytes": 10});
    let own = app.create_upload(&app.model_token("model-a"), "model-a", &body).await;
    assert_eq!(own.status(), 201);
    let media = own.json::<serde_json::Value>().await.unwrap()["media_id"].as_str().unwrap().to_owned();

    let other = app.create_upload(&app.model_token("model-b"), "model-a", &body).await;
    assert_eq!(error_code(other, 403).await, "forbidden");
    let peek = app.get_media(&app.model_token("model-b"), "model-a", &media).await;
    assert_eq!(error_code(peek, 403).await, "forbidden");
    let list = app
        .client
        .get(format!("{}/v1/models/model-a/media", app.url))
        .bearer_auth(app.model_token("model-b"))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(list, 403).await, "forbidden");

    assert_eq!(app.get_media(&app.admin_token(), "model-a", &media).await.status(), 200);
    assert_eq!(app.get_media(&app.model_token("model-a"), "model-a", &media).await.status(), 200);
    assert_eq!(app.create_upload(&app.admin_token(), "model-z", &body).await.status(), 201);
}
