//! The browser's cross-origin rules, defined once: the API's (API Gateway's `CorsConfiguration`
//! in `template.yaml`) and the bucket's (its `CorsRules`, which also cover derivatives), both for
//! the one allowed origin (the template's `AllowedOrigin`, `PHOENIX_CORS_ORIGIN` locally). A test
//! holds the template to these values.
//!
//! In AWS, API Gateway and S3 answer CORS themselves (API Gateway drops CORS headers a Lambda
//! sends), so nothing here is applied there. The local server wraps its API and its object
//! endpoint in [`CorsPolicy::layer`] so that a page on another origin sees what it will see in AWS.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Method};
use phoenix_domain::config::{ConfigError, env_or};
use tower_http::cors::{AllowHeaders, AllowOrigin, CorsLayer};

/// The variable the local server reads its allowed origin from (the template's `AllowedOrigin`).
pub const ORIGIN_ENV: &str = "PHOENIX_CORS_ORIGIN";

/// `AllowedHeaders: ["*"]`: any header the preflight asks for is allowed (S3 echoes them back).
pub const ANY_HEADER: &str = "*";

/// Which page may call: any origin (`*`, the template's default) or exactly one, such as
/// `https://app.example.com` or `http://localhost:5173`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum AllowedOrigin {
    #[default]
    Any,
    Exact(String),
}

impl AllowedOrigin {
    /// `PHOENIX_CORS_ORIGIN`, or any origin when unset (the template's default, `*`).
    pub fn from_env() -> Result<Self, ConfigError> {
        env_or(ORIGIN_ENV, Self::Any)
    }
}

impl FromStr for AllowedOrigin {
    type Err = String;

    /// `*`, or an origin as a browser sends it: `scheme://host[:port]`, without a path (one
    /// trailing `/` is forgiven).
    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        if raw == "*" {
            return Ok(Self::Any);
        }
        let origin = raw.strip_suffix('/').unwrap_or(raw);
        let host = origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .ok_or_else(|| format!("an origin is `*` or `http(s)://host[:port]`, not {raw:?}"))?;
        if host.is_empty()
            || host.contains(['/', '?', '#', '@'])
            || !host.chars().all(|c| c.is_ascii_graphic())
            || HeaderValue::from_str(origin).is_err()
        {
            return Err(format!("an origin is `http(s)://host[:port]` with no path, not {raw:?}"));
        }
        // Browsers send the scheme and host in lower case.
        Ok(Self::Exact(origin.to_ascii_lowercase()))
    }
}

impl fmt::Display for AllowedOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Exact(origin) => f.write_str(origin),
        }
    }
}

/// One CORS configuration: who may call, with which methods and request headers, which
/// response headers scripts may read, and how long a browser may cache a preflight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsPolicy {
    pub allowed_origin: AllowedOrigin,
    /// Request headers a page may send; [`ANY_HEADER`] alone allows whatever it asks for.
    pub allowed_headers: &'static [&'static str],
    pub allowed_methods: &'static [&'static str],
    /// Response headers readable from JavaScript beyond the CORS-safelisted ones.
    pub exposed_headers: &'static [&'static str],
    pub max_age: Duration,
}

impl CorsPolicy {
    /// The API (the HttpApi's `CorsConfiguration`): the bearer token, JSON bodies, the
    /// conditional-request headers and a job submission's `Idempotency-Key`; `PUT` (watermark
    /// profiles); readable: `ETag` (for `If-Match`, `If-None-Match`), `Location` (of a 201 or a
    /// submitted job's 202), `Idempotent-Replayed` (a submission answered from its key) and
    /// `Retry-After` (a submission still in flight).
    pub fn api(allowed_origin: AllowedOrigin) -> Self {
        Self {
            allowed_origin,
            allowed_headers: &["authorization", "content-type", "if-match", "if-none-match", "idempotency-key"],
            allowed_methods: &["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            exposed_headers: &["etag", "location", "idempotent-replayed", "retry-after"],
            max_age: Duration::from_secs(600),
        }
    }

    /// The bucket (its `CorsRules`): the presigned PUT with the headers it was signed for, GETs
    /// of presigned originals and of derivatives (`<img crossorigin>`, canvas, `fetch`), and the
    /// object's `ETag` readable.
    pub fn bucket(allowed_origin: AllowedOrigin) -> Self {
        Self {
            allowed_origin,
            allowed_headers: &[ANY_HEADER],
            allowed_methods: &["GET", "HEAD", "PUT"],
            exposed_headers: &["ETag"],
            max_age: Duration::from_secs(3000),
        }
    }

    /// The tower layer that answers preflights and adds the `Access-Control-*` headers as API
    /// Gateway and S3 do: an origin outside the policy gets no `Access-Control-Allow-Origin`.
    pub fn layer(&self) -> CorsLayer {
        let origin = match &self.allowed_origin {
            AllowedOrigin::Any => AllowOrigin::any(),
            AllowedOrigin::Exact(origin) => {
                AllowOrigin::list([HeaderValue::from_str(origin).expect("origins are checked when parsed")])
            }
        };
        let headers = if self.allowed_headers == [ANY_HEADER] {
            AllowHeaders::mirror_request()
        } else {
            AllowHeaders::list(self.allowed_headers.iter().map(|h| header_name(h)))
        };
        CorsLayer::new()
            .allow_origin(origin)
            .allow_headers(headers)
            .allow_methods(
                self.allowed_methods
                    .iter()
                    .map(|m| Method::from_bytes(m.as_bytes()).expect("policy methods are valid"))
                    .collect::<Vec<_>>(),
            )
            .expose_headers(self.exposed_headers.iter().map(|h| header_name(h)).collect::<Vec<_>>())
            .max_age(self.max_age)
    }
}

fn header_name(name: &str) -> HeaderName {
    HeaderName::from_bytes(name.as_bytes()).expect("policy header names are valid")
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::Router;
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use axum::routing::get;
    use serde_yaml::Value;
    use tower::ServiceExt;

    use super::*;

    const TEMPLATE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../template.yaml");

    fn template() -> Value {
        let raw = std::fs::read_to_string(TEMPLATE).expect("read template.yaml");
        serde_yaml::from_str(&raw).expect("template.yaml parses")
    }

    /// The one resource of this type.
    fn resource<'a>(template: &'a Value, kind: &str) -> &'a Value {
        let resources = template["Resources"].as_mapping().expect("the template has Resources");
        let found: Vec<&Value> = resources.values().filter(|r| r["Type"].as_str() == Some(kind)).collect();
        assert_eq!(found.len(), 1, "one {kind} in the template");
        found[0]
    }

    /// A list of names, compared as HTTP compares them (case-insensitively) and without order.
    fn names(value: &Value, what: &str) -> BTreeSet<String> {
        let list = value.as_sequence().unwrap_or_else(|| panic!("{what} is not a list: {value:?}"));
        let set: BTreeSet<String> = list
            .iter()
            .map(|v| v.as_str().unwrap_or_else(|| panic!("{what}: {v:?} is not a string")).to_ascii_lowercase())
            .collect();
        assert_eq!(set.len(), list.len(), "{what} has no repeats");
        set
    }

    fn policy_names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_ascii_lowercase()).collect()
    }

    /// `[!Ref AllowedOrigin]`: the one origin parameter.
    fn assert_origins_are_the_parameter(value: &Value, what: &str) {
        let list = value.as_sequence().unwrap_or_else(|| panic!("{what} is not a list: {value:?}"));
        assert_eq!(list.len(), 1, "{what}: one origin, the AllowedOrigin parameter");
        match &list[0] {
            Value::Tagged(tagged) => {
                assert_eq!(tagged.tag, "Ref", "{what}");
                assert_eq!(tagged.value.as_str(), Some("AllowedOrigin"), "{what}");
            }
            other => panic!("{what} should be !Ref AllowedOrigin, is {other:?}"),
        }
    }

    #[test]
    fn the_template_default_origin_is_the_local_default() {
        let template = template();
        let default = template["Parameters"]["AllowedOrigin"]["Default"].as_str().expect("AllowedOrigin has a default");
        assert_eq!(default.parse::<AllowedOrigin>(), Ok(AllowedOrigin::default()));
    }

    #[test]
    fn the_template_configures_the_api_policy() {
        let template = template();
        let cors = &resource(&template, "AWS::Serverless::HttpApi")["Properties"]["CorsConfiguration"];
        let policy = CorsPolicy::api(AllowedOrigin::Any);
        assert_origins_are_the_parameter(&cors["AllowOrigins"], "HttpApi AllowOrigins");
        assert_eq!(names(&cors["AllowHeaders"], "AllowHeaders"), policy_names(policy.allowed_headers));
        assert_eq!(names(&cors["AllowMethods"], "AllowMethods"), policy_names(policy.allowed_methods));
        assert_eq!(names(&cors["ExposeHeaders"], "ExposeHeaders"), policy_names(policy.exposed_headers));
        assert_eq!(cors["MaxAge"].as_u64(), Some(policy.max_age.as_secs()), "MaxAge");
        assert!(cors.get("AllowCredentials").is_none_or(|c| c.as_bool() == Some(false)), "no credentials");
        let keys: BTreeSet<&str> = cors.as_mapping().unwrap().keys().filter_map(Value::as_str).collect();
        let known = ["AllowOrigins", "AllowHeaders", "AllowMethods", "ExposeHeaders", "MaxAge", "AllowCredentials"];
        assert!(keys.iter().all(|k| known.contains(k)), "a CorsConfiguration key this policy does not model: {keys:?}");
    }

    #[test]
    fn the_template_configures_the_bucket_policy() {
        let template = template();
        let rules = resource(&template, "AWS::S3::Bucket")["Properties"]["CorsConfiguration"]["CorsRules"]
            .as_sequence()
            .expect("the bucket has CorsRules");
        assert_eq!(rules.len(), 1, "one CORS rule");
        let rule = &rules[0];
        let policy = CorsPolicy::bucket(AllowedOrigin::Any);
        assert_origins_are_the_parameter(&rule["AllowedOrigins"], "bucket AllowedOrigins");
        assert_eq!(names(&rule["AllowedHeaders"], "AllowedHeaders"), policy_names(policy.allowed_headers));
        assert_eq!(names(&rule["AllowedMethods"], "AllowedMethods"), policy_names(policy.allowed_methods));
        assert_eq!(names(&rule["ExposedHeaders"], "ExposedHeaders"), policy_names(policy.exposed_headers));
        assert_eq!(rule["MaxAge"].as_u64(), Some(policy.max_age.as_secs()), "MaxAge");
    }

    #[test]
    fn origins_parse_as_browsers_send_them() {
        assert_eq!("*".parse(), Ok(AllowedOrigin::Any));
        assert_eq!("https://App.Example.com/".parse(), Ok(AllowedOrigin::Exact("https://app.example.com".into())));
        assert_eq!("http://localhost:5173".parse(), Ok(AllowedOrigin::Exact("http://localhost:5173".into())));
        for bad in ["app.example.com", "https://", "https://a.com/path", "ftp://a.com", "https://a b.com"] {
            assert!(bad.parse::<AllowedOrigin>().is_err(), "{bad:?} should be refused");
        }
    }

    fn app(policy: &CorsPolicy) -> Router {
        Router::new().route("/thing", get(|| async { ([(header::ETAG, "\"1\"")], "ok") })).layer(policy.layer())
    }

    fn preflight(origin: &str, method: &str, headers: &str) -> Request<Body> {
        Request::builder()
            .method(Method::OPTIONS)
            .uri("/thing")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, method)
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, headers)
            .body(Body::empty())
            .unwrap()
    }

    fn text(response: &axum::response::Response, name: HeaderName) -> Option<String> {
        response.headers().get(name).map(|v| v.to_str().unwrap().to_ascii_lowercase())
    }

    #[tokio::test]
    async fn a_configured_origin_is_allowed_and_no_other() {
        let policy = CorsPolicy::api("https://app.example.com".parse().unwrap());
        let ok = app(&policy).oneshot(preflight("https://app.example.com", "PATCH", "if-match,authorization")).await;
        let ok = ok.unwrap();
        assert!(ok.status().is_success(), "{}", ok.status());
        assert_eq!(text(&ok, header::ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(), Some("https://app.example.com"));
        let methods = text(&ok, header::ACCESS_CONTROL_ALLOW_METHODS).unwrap();
        assert!(methods.contains("patch"), "{methods}");
        let headers = text(&ok, header::ACCESS_CONTROL_ALLOW_HEADERS).unwrap();
        assert!(headers.contains("if-match") && headers.contains("authorization"), "{headers}");
        assert_eq!(text(&ok, header::ACCESS_CONTROL_MAX_AGE).as_deref(), Some("600"));

        let other = app(&policy).oneshot(preflight("https://evil.example", "PATCH", "if-match")).await.unwrap();
        assert_eq!(text(&other, header::ACCESS_CONTROL_ALLOW_ORIGIN), None);

        let get = Request::builder().uri("/thing").header(header::ORIGIN, "https://app.example.com");
        let got = app(&policy).oneshot(get.body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(got.status(), StatusCode::OK);
        assert_eq!(text(&got, header::ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(), Some("https://app.example.com"));
        assert_eq!(
            text(&got, header::ACCESS_CONTROL_EXPOSE_HEADERS).as_deref(),
            Some("etag,location,idempotent-replayed,retry-after")
        );

        // A job submission from a page: its Idempotency-Key is allowed, and so is PUT.
        let submit = app(&policy).oneshot(preflight("https://app.example.com", "PUT", "idempotency-key")).await;
        let submit = submit.unwrap();
        assert!(text(&submit, header::ACCESS_CONTROL_ALLOW_HEADERS).unwrap().contains("idempotency-key"));
        assert!(text(&submit, header::ACCESS_CONTROL_ALLOW_METHODS).unwrap().contains("put"));
    }

    #[tokio::test]
    async fn the_bucket_allows_the_headers_a_presigned_put_asks_for() {
        let policy = CorsPolicy::bucket(AllowedOrigin::Any);
        let ok = app(&policy).oneshot(preflight("http://127.0.0.1:9", "PUT", "content-type")).await.unwrap();
        assert!(ok.status().is_success(), "{}", ok.status());
        assert_eq!(text(&ok, header::ACCESS_CONTROL_ALLOW_ORIGIN).as_deref(), Some("*"));
        assert_eq!(text(&ok, header::ACCESS_CONTROL_ALLOW_HEADERS).as_deref(), Some("content-type"));
        assert_eq!(text(&ok, header::ACCESS_CONTROL_MAX_AGE).as_deref(), Some("3000"));
    }
}
