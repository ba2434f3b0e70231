//! What differs when API Gateway invokes the router: the path it hands over may carry a named
//! stage (`/prod/v1/…`) or a custom domain's API mapping (`/media/v1/…`) in front of the routes.

use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

/// What [`route_path`] removed from the front of a request's path (`/prod`, `/media`): the
/// routes' own URLs (`Location`) put it back so that clients can follow them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PathPrefix(pub String);

impl PathPrefix {
    /// `path` (a route's absolute path) as the client must request it.
    pub fn url(prefix: Option<&Self>, path: &str) -> String {
        format!("{}{path}", prefix.map(|p| p.0.as_str()).unwrap_or_default())
    }
}

/// The address API Gateway saw the request come from (`requestContext.http.sourceIp`): the
/// client's, or CloudFront's when the request came through the CDN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceIp(pub String);

/// Removes what API Gateway puts in front of the routes: a named stage (never `$default`), then
/// `base_path` (an API mapping key of a custom domain, e.g. `media`), when the path starts with them;
/// and keeps the request's [`SourceIp`].
pub fn route_path(mut request: Request, base_path: Option<&str>) -> Request {
    let (stage, source_ip) = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            (ctx.stage.clone().filter(|s| s != "$default"), ctx.http.source_ip.clone())
        }
        _ => (None, None),
    };
    if let Some(ip) = source_ip.filter(|ip| !ip.is_empty()) {
        request.extensions_mut().insert(SourceIp(ip));
    }
    let mut path = request.uri().path().to_owned();
    for prefix in
        [stage.as_deref(), base_path.map(|p| p.trim_matches('/')).filter(|p| !p.is_empty())].into_iter().flatten()
    {
        let prefix = format!("/{prefix}");
        if path == prefix || path.starts_with(&format!("{prefix}/")) {
            path = path[prefix.len()..].to_owned();
        }
    }
    if path.is_empty() {
        path = "/".to_owned();
    }
    if path != request.uri().path() {
        let original = request.uri().path();
        let removed = original.strip_suffix(path.as_str()).unwrap_or_default().to_owned();
        request.extensions_mut().insert(PathPrefix(removed));
        let path_and_query = match request.uri().query() {
            Some(query) => format!("{path}?{query}"),
            None => path,
        };
        let mut parts = request.uri().clone().into_parts();
        if let Ok(value) = path_and_query.parse() {
            parts.path_and_query = Some(value);
            if let Ok(uri) = http::Uri::from_parts(parts) {
                *request.uri_mut() = uri;
            }
        }
    }
    request
}

/// Serves `router` to API Gateway, with [`route_path`] applied to every request; the custom
/// domain's API mapping key, if the API is mapped under one, comes from `PHOENIX_API_BASE_PATH`.
pub async fn run(router: axum::Router) -> Result<(), lambda_http::Error> {
    let base_path = std::env::var("PHOENIX_API_BASE_PATH").ok().filter(|p| !p.trim().is_empty());
    let service = tower::ServiceBuilder::new()
        .map_request(move |request: Request| route_path(request, base_path.as_deref()))
        .service(router);
    lambda_http::run(service).await
}
