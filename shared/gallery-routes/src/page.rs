//! The public page of a published gallery, rendered from its document with maud (every value
//! interpolated into the HTML is escaped by the template engine). A responsive grid (1 to 4
//! columns) whose `sizes` match its columns, `<picture>` with WebP and JPEG `srcset`s, lazy
//! loading, the dominant colour and a blurred tiny rendition behind each image until it loads,
//! captions and credits; no JavaScript.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use phoenix_domain::galleries::{PublishedDocument, PublishedItem};

/// The width each image is shown at, for the grid's breakpoints below (a 1,400 px page at most).
const SIZES: &str = "(min-width: 1400px) 340px, (min-width: 1100px) 25vw, (min-width: 800px) 33vw, \
                     (min-width: 560px) 50vw, 100vw";

const STYLE: &str = "\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d1d1f;background:#fafafa}\
header,main{max-width:1400px;margin:0 auto;padding:0 16px}\
header{padding-top:32px;padding-bottom:8px}\
h1{font-size:clamp(1.6rem,4vw,2.6rem);margin:0 0 8px;line-height:1.15}\
h2{font-size:1.25rem;margin:32px 0 12px}\
.description{max-width:70ch;color:#444;white-space:pre-line;margin:0}\
.grid{list-style:none;margin:0;padding:0;display:grid;gap:16px;grid-template-columns:1fr}\
@media (min-width:560px){.grid{grid-template-columns:repeat(2,1fr)}}\
@media (min-width:800px){.grid{grid-template-columns:repeat(3,1fr)}}\
@media (min-width:1100px){.grid{grid-template-columns:repeat(4,1fr)}}\
figure{margin:0}\
.frame{position:relative;overflow:hidden;border-radius:6px;background:#ddd center/cover no-repeat}\
.frame img{display:block;width:100%;height:100%;object-fit:cover}\
figcaption{font-size:.9rem;padding:8px 2px 0;color:#333}\
.credits{display:block;color:#666;font-size:.8rem}\
.download{display:inline-block;margin:6px 2px 0;font-size:.85rem;color:#0b57d0}\
footer{max-width:1400px;margin:40px auto;padding:0 16px;color:#888;font-size:.8rem}";

/// `#rrggbb`, or nothing (it goes into a style attribute).
fn colour(raw: Option<&str>) -> Option<&str> {
    raw.filter(|c| c.len() == 7 && c.starts_with('#') && c[1..].chars().all(|d| d.is_ascii_hexdigit()))
}

/// A URL safe inside CSS `url("…")` (ours are; anything else is left out).
fn css_url(raw: Option<&str>) -> Option<&str> {
    raw.filter(|u| !u.chars().any(|c| c.is_whitespace() || c.is_control() || "\"'()\\<>".contains(c)))
}

fn frame_style(item: &PublishedItem) -> String {
    let mut style = format!("aspect-ratio:{} / {};", item.width.max(1), item.height.max(1));
    if let Some(c) = colour(item.dominant_color.as_deref()) {
        style.push_str(&format!("background-color:{c};"));
    }
    if let Some(url) = css_url(item.placeholder_url.as_deref()) {
        style.push_str(&format!("background-image:url(\"{url}\");"));
    }
    style
}

/// How a page is shown: the public page, or a share link's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PageOptions {
    /// A share link's page: never indexed, never sends its URL (the token) as a referrer.
    pub shared: bool,
    /// Each photo offers its largest JPEG rendition as a download (never the original).
    pub downloads: bool,
}

/// The URL of the largest JPEG rendition of `item`: what a share link allowing downloads offers.
pub fn download_url(item: &PublishedItem) -> &str {
    item.sources
        .iter()
        .find(|s| s.format == "jpeg")
        .and_then(|s| s.srcset.iter().max_by_key(|r| r.width))
        .map_or(item.fallback.url.as_str(), |r| r.url.as_str())
}

fn figure(item: &PublishedItem, title: &str, n: usize, eager: bool, options: PageOptions) -> Markup {
    let alt = item.alt_text.clone().or_else(|| item.caption.clone()).unwrap_or_else(|| format!("{title}, photo {n}"));
    let jpeg = item.sources.iter().find(|s| s.format == "jpeg");
    html! {
        figure {
            div.frame style=(frame_style(item)) {
                picture {
                    @for set in item.sources.iter().filter(|s| s.format != "jpeg") {
                        source type=(set.content_type) srcset=(set.attribute()) sizes=(SIZES);
                    }
                    img src=(item.fallback.url) srcset=[jpeg.map(|s| s.attribute())] sizes=(SIZES)
                        width=(item.width) height=(item.height) alt=(alt)
                        loading=(if eager { "eager" } else { "lazy" }) decoding="async";
                }
            }
            @if options.downloads {
                a.download href=(download_url(item)) download { "Download" }
            }
            @if item.caption.is_some() || !item.credits.is_empty() {
                figcaption {
                    @if let Some(caption) = &item.caption { (caption) }
                    @if !item.credits.is_empty() {
                        span.credits {
                            @for (i, credit) in item.credits.iter().enumerate() {
                                @if i > 0 { " · " }
                                (credit.role) ": " (credit.name)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The public page of `document`.
pub fn render(document: &PublishedDocument) -> Markup {
    render_with(document, PageOptions::default())
}

/// The page of `document`, as `options` say.
pub fn render_with(document: &PublishedDocument, options: PageOptions) -> Markup {
    // Each section's first item's number, counting from 1 across the page.
    let firsts: Vec<usize> = document
        .sections
        .iter()
        .scan(1, |next, s| {
            let first = *next;
            *next += s.items.len();
            Some(first)
        })
        .collect();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // No icon to fetch: a browser would otherwise ask for /favicon.ico and log its 404.
                link rel="icon" href="data:,";
                @if options.shared {
                    meta name="robots" content="noindex, nofollow";
                    meta name="referrer" content="no-referrer";
                }
                title { (document.title) }
                @if let Some(description) = &document.description {
                    meta name="description" content=(description);
                }
                meta property="og:title" content=(document.title);
                @if let Some(cover) = &document.cover {
                    meta property="og:image" content=(cover.fallback.url);
                }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { (document.title) }
                    @if let Some(description) = &document.description {
                        p.description { (description) }
                    }
                }
                main {
                    @for (section, first) in document.sections.iter().zip(&firsts) {
                        @if !section.items.is_empty() {
                            section {
                                @if let Some(title) = &section.title { h2 { (title) } }
                                ul.grid {
                                    @for (i, item) in section.items.iter().enumerate() {
                                        li { (figure(item, &document.title, first + i, first + i == 1, options)) }
                                    }
                                }
                            }
                        }
                    }
                    @if document.item_count == 0 {
                        p { "Nothing to show here yet." }
                    }
                }
                footer { "Version " (document.version) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use phoenix_domain::galleries::{PublishedSection, Slug, Source, SourceSet};
    use phoenix_domain::{GalleryId, MediaId};

    use super::*;

    fn item(caption: &str) -> PublishedItem {
        let source =
            |format: &str, w: u32| Source { url: format!("/derived/m1/x/{w}.{format}"), width: w, height: w / 2 };
        PublishedItem {
            media_id: MediaId::new(),
            caption: Some(caption.into()),
            alt_text: Some("A \"quoted\" <alt>".into()),
            credits: vec![phoenix_domain::Credit { role: "Photographer".into(), name: "Ada & Co".into() }],
            width: 1280,
            height: 640,
            placeholder: None,
            placeholder_url: Some("/derived/m1/x/tiny.jpg".into()),
            dominant_color: Some("#a0b0c0\"><script>".into()),
            sources: vec![
                SourceSet {
                    format: "webp".into(),
                    content_type: "image/webp".into(),
                    srcset: vec![source("webp", 320), source("webp", 640)],
                },
                SourceSet {
                    format: "jpeg".into(),
                    content_type: "image/jpeg".into(),
                    srcset: vec![source("jpeg", 320), source("jpeg", 640)],
                },
            ],
            fallback: source("jpeg", 640),
        }
    }

    fn document() -> PublishedDocument {
        PublishedDocument {
            gallery_id: GalleryId::parse("g1").unwrap(),
            version: 3,
            published_at: time::OffsetDateTime::UNIX_EPOCH,
            title: "Summer <script>alert(1)</script>".into(),
            slug: Slug::parse("summer").unwrap(),
            description: Some("Days & nights".into()),
            cover: None,
            sections: vec![PublishedSection {
                section_id: "main".into(),
                title: Some("Beach".into()),
                items: vec![item("First </figcaption>"), item("Second")],
            }],
            item_count: 2,
        }
    }

    #[test]
    fn the_page_escapes_everything_it_shows() {
        let html = render(&document()).into_string();
        assert!(html.contains("Summer &lt;script&gt;alert(1)&lt;/script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "no script, and nothing injected: {html}");
        assert!(html.contains("alt=\"A &quot;quoted&quot; &lt;alt&gt;\""));
        assert!(html.contains("First &lt;/figcaption&gt;"));
        assert!(html.contains("Ada &amp; Co"));
        assert!(!html.contains("background-color"), "a malformed colour is left out");
    }

    #[test]
    fn the_page_offers_webp_and_jpeg_srcsets_lazily_with_placeholders() {
        let html = render(&document()).into_string();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.contains(
            "<source type=\"image/webp\" srcset=\"/derived/m1/x/320.webp 320w, /derived/m1/x/640.webp 640w\""
        ));
        assert!(html.contains("srcset=\"/derived/m1/x/320.jpeg 320w, /derived/m1/x/640.jpeg 640w\""));
        assert!(html.contains(&format!("sizes=\"{SIZES}\"")));
        assert_eq!(html.matches("loading=\"lazy\"").count(), 1, "all but the first image load lazily");
        assert!(html.contains("width=\"1280\" height=\"640\""));
        assert!(html.contains("background-image:url(&quot;/derived/m1/x/tiny.jpg&quot;)"));
        assert!(html.contains("name=\"viewport\""));
    }
}
