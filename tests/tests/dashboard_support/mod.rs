//! A real headless Chromium for the dashboard's tests, driven over WebDriver
//! (chromedriver, both from Debian's packages, which `scripts/setup` installs), with an
//! empty profile of its own and no network beyond this machine; and ([`alone`]) the
//! dashboard on its own with raw HTTP clients, for the tests of its limits.

#![allow(dead_code)] // each test file uses part of it

pub mod alone;

use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use pitcrew_e2e::supervisor::{free_tcp_port, kill_group};

/// How long a page may take to show something on a loaded machine (debug builds, tests
/// in parallel): far above the ~100 ms it takes.
pub const PAGE_PATIENCE: Duration = Duration::from_secs(30);

/// Chromium's flags: headless, and nothing that reaches out of the machine (this
/// workplace's network refuses other connections, and a test must not depend on them).
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
];

/// chromedriver and the Chromium session it runs; both killed on drop.
pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: std::path::PathBuf,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session.
    pub async fn start(tag: &str) -> Browser {
        let port = free_tcp_port();
        let profile =
            std::env::temp_dir().join(format!("pitcrew-chrome-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("can create the browser profile");
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver runs (scripts/setup installs chromium-driver)");
        let mut args: Vec<String> = FLAGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "chrome".into());
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({"binary": "/usr/bin/chromium", "args": args}),
        );
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + PAGE_PATIENCE;
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "no browser session: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        Browser {
            client,
            driver,
            profile,
        }
    }

    /// The text of the first element matching `css` ("" when there is none).
    pub async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Evaluates `script` (a function body that returns a value) in the page.
    pub async fn eval(&self, script: &str) -> serde_json::Value {
        self.client
            .execute(script, vec![])
            .await
            .unwrap_or(serde_json::Value::Null)
    }

    /// Loads `url` in the tab.
    pub async fn open(&self, url: &str) {
        if let Err(e) = self.client.goto(url).await {
            panic!("the page {url} does not load: {e}");
        }
    }

    /// Waits until `script` returns true; panics naming `what` with the page's header.
    pub async fn wait_until(&self, what: &str, script: &str) {
        let deadline = Instant::now() + PAGE_PATIENCE;
        loop {
            if self.eval(script).await == serde_json::Value::Bool(true) {
                return;
            }
            if Instant::now() >= deadline {
                let header = self.text("header").await;
                panic!("the page never showed {what}; header: {header}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Clicks the element with id `id`.
    pub async fn click(&self, id: &str) {
        self.click_css(&format!("#{id}")).await;
    }

    /// Clicks the first element matching `css`, again if the page re-rendered it between
    /// finding and clicking (the live tables are rebuilt a few times a second).
    pub async fn click_css(&self, css: &str) {
        let deadline = Instant::now() + PAGE_PATIENCE;
        loop {
            let error = match self.client.find(Locator::Css(css)).await {
                Ok(e) => match e.click().await {
                    Ok(()) => return,
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            assert!(Instant::now() < deadline, "cannot click {css}: {error}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver's group holds the browser too.
        kill_group(self.driver.id(), libc::SIGKILL);
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
