//! What a client on another origin gets back: compressed JSON when it accepts it, the CORS
//! answers API Gateway and the bucket will give, and presigned-PUT refusals that say what differs.

use std::io::Read;

use reqwest::header::{
    ACCEPT_ENCODING, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS,
    ACCESS_CONTROL_REQUEST_METHOD, CONTENT_ENCODING, HeaderName, ORIGIN, VARY,
};
use reqwest::{Method, Response};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

const MODEL: &str = "model-r";
/// A page's origin: any will do, the local server allows any by default (as the template).
const PAGE: &str = "http://127.0.0.1:9";

/// A small JPEG that no other `n` gives (a gradient shifted by `n`), so each upload is its own
/// photo with its own derivatives.
pub fn distinct_jpeg(n: u32) -> Vec<u8> {
    let image = image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([((x + 5 * n) % 256) as u8, ((y + 3 * n) % 256) as u8, ((x + y + 11 * n) % 256) as u8])
    });
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 85).encode_image(&image).expect("encode a JPEG");
    bytes
}

fn header(response: &Response, name: HeaderName) -> Option<String> {
    response.headers().get(name).map(|v| v.to_str().unwrap().to_owned())
}

/// `name`'s comma-separated values, lower case.
fn listed(response: &Response, name: HeaderName) -> Vec<String> {
    header(response, name.clone())
        .unwrap_or_else(|| panic!("no {name} in {:?}", response.headers()))
        .split(',')
        .map(|v| v.trim().to_ascii_lowercase())
        .collect()
}

/// The list of 50, with this `Accept-Encoding`: its `Content-Encoding` and its bytes as sent.
async fn list_of_50(app: &TestApp, token: &str, accept: Option<&str>) -> (Option<String>, Vec<u8>) {
    let mut request = app.client.get(format!("{}/v1/models/{MODEL}/media?limit=50", app.url)).bearer_auth(token);
    if let Some(accept) = accept {
        request = request.header(ACCEPT_ENCODING, accept);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(listed(&response, VARY).contains(&"accept-encoding".to_owned()), "caches must key on Accept-Encoding");
    let encoding = header(&response, CONTENT_ENCODING);
    (encoding, response.bytes().await.unwrap().to_vec())
}

/// Also the measurement in docs/performance.md (`-- --nocapture` prints the sizes).
#[tokio::test]
async fn a_list_of_50_is_compressed_when_the_client_accepts_it() {
    let app = spawn_app().await;
    let token = app.model_token(MODEL);
    let mut ids = Vec::new();
    for n in 0..50 {
        ids.push(app.upload(&token, MODEL, distinct_jpeg(n), "image/jpeg").await);
    }
    for id in &ids {
        assert_eq!(app.wait_processed(&token, MODEL, id).await["status"], "pending_review");
    }

    let (encoding, identity) = list_of_50(&app, &token, None).await;
    assert_eq!(encoding, None, "no Accept-Encoding, no compression");
    let page: Value = serde_json::from_slice(&identity).expect("identity is the JSON itself");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(50), "{page}");

    let (encoding, gzip) = list_of_50(&app, &token, Some("gzip")).await;
    assert_eq!(encoding.as_deref(), Some("gzip"));
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&gzip[..]).read_to_end(&mut decoded).expect("a gzip stream");
    assert_eq!(serde_json::from_slice::<Value>(&decoded).expect("gzip of JSON"), page, "the same list");

    let (encoding, brotli) = list_of_50(&app, &token, Some("br")).await;
    assert_eq!(encoding.as_deref(), Some("br"));

    let (encoding, _) = list_of_50(&app, &token, Some("gzip, deflate, br")).await;
    assert!(matches!(encoding.as_deref(), Some("gzip" | "br")), "{encoding:?}");

    println!(
        "GET /v1/models/{MODEL}/media?limit=50 ({} items): identity {} bytes, gzip {} bytes, br {} bytes",
        ids.len(),
        identity.len(),
        gzip.len(),
        brotli.len()
    );
    assert!(gzip.len() * 5 < identity.len(), "gzip {} of {} bytes", gzip.len(), identity.len());
    assert!(brotli.len() * 5 < identity.len(), "br {} of {} bytes", brotli.len(), identity.len());
}

async fn preflight(app: &TestApp, url: &str, method: &str, headers: &str) -> Response {
    app.client
        .request(Method::OPTIONS, url)
        .header(ORIGIN, PAGE)
        .header(ACCESS_CONTROL_REQUEST_METHOD, method)
        .header(ACCESS_CONTROL_REQUEST_HEADERS, headers)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_page_on_another_origin_gets_the_cors_answers_of_api_gateway_and_the_bucket() {
    let app = spawn_app().await;
    let token = app.model_token(MODEL);
    let media = format!("{}/v1/models/{MODEL}/media/01HZX3K6Q2V5W8Y9ZABCDEFGHJ", app.url);

    // Every call a page makes is preflighted, and so is a route that does not exist.
    let uploads = format!("{}/v1/models/{MODEL}/media/uploads", app.url);
    let unknown = format!("{}/v1/no-such-route", app.url);
    for (url, method, headers) in [
        (&uploads, "POST", "authorization,content-type"),
        (&media, "GET", "authorization,if-none-match"),
        (&media, "PATCH", "authorization,content-type,if-match"),
        (&media, "DELETE", "authorization,if-match"),
        (&unknown, "GET", "authorization"),
    ] {
        let answer = preflight(&app, url, method, headers).await;
        assert!(answer.status().is_success(), "preflight of {method} {url}: {}", answer.status());
        assert_eq!(header(&answer, ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(), Some("*"), "{method} {url}");
        assert!(listed(&answer, ACCESS_CONTROL_ALLOW_METHODS).contains(&method.to_ascii_lowercase()), "{method}");
        let allowed = listed(&answer, ACCESS_CONTROL_ALLOW_HEADERS);
        assert!(headers.split(',').all(|h| allowed.contains(&h.to_owned())), "{method} {url}: {allowed:?}");
        assert_eq!(header(&answer, ACCESS_CONTROL_MAX_AGE).as_deref(), Some("600"));
    }

    // Answers, errors too, are readable by the page, with ETag and Location.
    let refused = app.client.get(&media).header(ORIGIN, PAGE).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    assert_eq!(header(&refused, ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(), Some("*"), "errors are readable");
    let photo = distinct_jpeg(1);
    let created = app
        .client
        .post(&uploads)
        .header(ORIGIN, PAGE)
        .bearer_auth(&token)
        .json(&json!({"filename": "p.jpg", "content_type": "image/jpeg", "bytes": photo.len()}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(header(&created, ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(), Some("*"));
    assert_eq!(
        listed(&created, ACCESS_CONTROL_EXPOSE_HEADERS),
        ["etag", "location", "idempotent-replayed", "retry-after"]
    );
    let created: Value = created.json().await.unwrap();

    // The presigned PUT: preflighted for its Content-Type, its ETag readable.
    let upload_url = created["upload"]["url"].as_str().unwrap();
    let answer = preflight(&app, upload_url, "PUT", "content-type").await;
    assert!(answer.status().is_success(), "preflight of the upload PUT: {}", answer.status());
    assert_eq!(header(&answer, ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(), Some("*"));
    assert!(listed(&answer, ACCESS_CONTROL_ALLOW_METHODS).contains(&"put".to_owned()));
    assert_eq!(listed(&answer, ACCESS_CONTROL_ALLOW_HEADERS), ["content-type"]);
    assert_eq!(header(&answer, ACCESS_CONTROL_MAX_AGE).as_deref(), Some("3000"));
    let put = app
        .client
        .put(upload_url)
        .header(ORIGIN, PAGE)
        .header("Content-Type", "image/jpeg")
        .body(photo)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    assert_eq!(header(&put, ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(), Some("*"));
    assert_eq!(listed(&put, ACCESS_CONTROL_EXPOSE_HEADERS), ["etag"]);

    // Derivatives, as the CDN will serve them: loadable with `crossorigin`, never re-compressed.
    let id = created["media_id"].as_str().unwrap();
    let record = app.wait_processed(&token, MODEL, id).await;
    let derivative = record["derivatives"][0]["url"].as_str().expect("a derivative");
    let image = app.client.get(derivative).header(ORIGIN, PAGE).header(ACCEPT_ENCODING, "gzip, br").send().await;
    let image = image.unwrap();
    assert_eq!(image.status(), 200);
    assert_eq!(header(&image, ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(), Some("*"));
    assert_eq!(listed(&image, ACCESS_CONTROL_EXPOSE_HEADERS), ["etag"]);
    assert_eq!(header(&image, CONTENT_ENCODING), None, "images are sent as they are");
}

/// The text of the first `<name>` element of an S3 error document.
fn element(xml: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = xml.find(&open)? + open.len();
    Some(xml[start..start + xml[start..].find(&format!("</{name}>"))?].to_owned())
}

#[tokio::test]
async fn a_refused_presigned_put_says_which_header_differs() {
    let app = spawn_app().await;
    let token = app.model_token(MODEL);
    let photo = distinct_jpeg(2);
    let created = app
        .create_upload(&token, MODEL, &json!({"filename": "p.jpg", "content_type": "image/jpeg", "bytes": photo.len()}))
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let url = created["upload"]["url"].as_str().unwrap();
    let put = |url: String, content_type: &'static str, body: Vec<u8>, extra: Option<(&'static str, &'static str)>| {
        let mut request = app.client.put(url).header("Content-Type", content_type).body(body);
        if let Some((name, value)) = extra {
            request = request.header(name, value);
        }
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };

    let (status, xml) = put(url.to_owned(), "image/png", photo.clone(), None).await;
    assert_eq!(status, 403, "{xml}");
    assert_eq!(element(&xml, "Code").as_deref(), Some("SignatureDoesNotMatch"), "{xml}");
    assert!(element(&xml, "Message").unwrap().contains("Content-Type"), "{xml}");
    assert_eq!(element(&xml, "Header").as_deref(), Some("Content-Type"), "{xml}");
    assert_eq!(element(&xml, "Signed").as_deref(), Some("image/jpeg"), "{xml}");
    assert_eq!(element(&xml, "Received").as_deref(), Some("image/png"), "{xml}");

    let (status, xml) = put(url.to_owned(), "image/jpeg", photo[..100].to_vec(), None).await;
    assert_eq!(status, 403, "{xml}");
    assert_eq!(element(&xml, "Code").as_deref(), Some("SignatureDoesNotMatch"), "{xml}");
    assert!(element(&xml, "Message").unwrap().contains("Content-Length"), "{xml}");
    assert_eq!(element(&xml, "Header").as_deref(), Some("Content-Length"), "{xml}");
    assert_eq!(element(&xml, "Signed"), Some(photo.len().to_string()), "{xml}");
    assert_eq!(element(&xml, "Received").as_deref(), Some("100"), "{xml}");

    let (status, xml) = put(url.to_owned(), "image/jpeg", photo.clone(), Some(("x-amz-acl", "public-read"))).await;
    assert_eq!(status, 403, "{xml}");
    assert_eq!(element(&xml, "Code").as_deref(), Some("AccessDenied"), "{xml}");
    assert_eq!(element(&xml, "HeadersNotSigned").as_deref(), Some("x-amz-acl"), "{xml}");

    // An altered URL proves nothing about the headers: no detail, as S3.
    let forged = url.replace("X-Phoenix-Signature=", "X-Phoenix-Signature=00");
    let (status, xml) = put(forged, "image/png", photo.clone(), None).await;
    assert_eq!(status, 403, "{xml}");
    assert_eq!(element(&xml, "Code").as_deref(), Some("SignatureDoesNotMatch"), "{xml}");
    assert_eq!(element(&xml, "Header"), None, "{xml}");

    let (status, xml) = put(url.to_owned(), "image/jpeg", photo, None).await;
    assert_eq!(status, 200, "{xml}");
}
