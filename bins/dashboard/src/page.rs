//! The page and the login page, built into the binary: plain HTML, CSS and JavaScript (no
//! build step, no Node), the plots drawn on canvases by the page's own code. The CSS and
//! the script are inlined into the one HTML document, so the page is one request behind
//! the token and needs nothing from the network (an event's WiFi has no internet).

use std::sync::LazyLock;

const HTML: &str = include_str!("../assets/index.html");
const CSS: &str = include_str!("../assets/app.css");
const JS: &str = include_str!("../assets/app.js");

/// The login page: asks for the token that the dashboard's start-up log line carries.
pub const LOGIN: &str = include_str!("../assets/login.html");

static PAGE: LazyLock<String> = LazyLock::new(|| {
    HTML.replacen("/*APP_CSS*/", CSS, 1)
        .replacen("/*APP_JS*/", JS, 1)
});

/// The page.
pub fn page() -> &'static str {
    PAGE.as_str()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_inlines_its_style_and_script() {
        let page = super::page();
        assert!(!page.contains("/*APP_CSS*/") && !page.contains("/*APP_JS*/"));
        assert!(page.contains("new WebSocket"));
    }
}
