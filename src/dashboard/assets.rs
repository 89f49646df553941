//! The page's files, embedded into the binary at build time from
//! `dashboards/` (no front-end build step).

/// `dashboards/index.html`.
pub const INDEX_HTML: &str = include_str!("../../dashboards/index.html");
/// `dashboards/app.js`.
pub const APP_JS: &str = include_str!("../../dashboards/app.js");
/// `dashboards/style.css`.
pub const STYLE_CSS: &str = include_str!("../../dashboards/style.css");
/// `dashboards/favicon.svg`.
pub const FAVICON_SVG: &str = include_str!("../../dashboards/favicon.svg");
