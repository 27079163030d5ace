//! The WASM console (examples/wasm-console) end to end: qmp-core compiled to WebAssembly,
//! running in headless Chromium, talking to a real qemu-storage-daemon through the
//! browser's WebSocket.
//!
//! The test builds the page with `examples/wasm-console/build.sh`, serves `dist/` from a
//! small HTTP server thread on 127.0.0.1, starts `qemu-storage-daemon` (`QMP_QSD`
//! overrides the binary) with a TCP monitor bridged to a WebSocket by `websockify` (see
//! below for why not QEMU's own WebSocket chardev), and drives Debian's
//! `/usr/bin/chromium` through `chromedriver` with plain WebDriver requests: it types
//! `query-version` into the page and checks the reply shows the daemon's own version, then
//! starts a `blockdev-create` job from the page and waits for its `JOB_STATUS_CHANGE`
//! events (up to `concluded`, and `null` after `job-dismiss`) in the page's event list.
//! A screenshot is written to `<target>/test-artifacts/wasm-console.png`.
//!
//! Missing tools (chromium, chromedriver, websockify, wasm-bindgen-cli) fail the test with
//! a message saying to run `scripts/setup.sh`; nothing is skipped.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use qmp_tests::repo_root;
use serde_json::{json, Value};

/// How long any one wait on the page may take.
const PAGE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the build of the page may take (a cold build on the shared 2-core machine).
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const WEBSOCKIFY: &str = "/usr/bin/websockify";
/// The WebDriver key of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// A child process killed and reaped on drop, on every path out of the test.
struct KillOnDrop {
    name: &'static str,
    child: Child,
}

impl KillOnDrop {
    fn spawn(name: &'static str, command: &mut Command) -> Self {
        let child = command.spawn().unwrap_or_else(|error| {
            panic!("cannot start {name} ({command:?}): {error}; run scripts/setup.sh")
        });
        KillOnDrop { name, child }
    }

    /// Fails the test if the process has already exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited early: {status}", self.name);
        }
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path =
            std::env::temp_dir().join(format!("qmp-wasm-console-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|error| panic!("cannot create {}: {error}", path.display()));
        ScratchDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The target directory: `CARGO_TARGET_DIR` if set, else the workspace's `target/`.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                repo_root().join(dir)
            }
        }
        None => repo_root().join("target"),
    }
}

fn require_file(path: &str, package: &str) {
    assert!(
        Path::new(path).exists(),
        "{path} is missing (Debian package {package}): run scripts/setup.sh"
    );
}

/// Runs build.sh and returns the dist directory.
fn build_page() -> PathBuf {
    let example = repo_root().join("examples/wasm-console");
    let mut child = Command::new("bash")
        .arg(example.join("build.sh"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|error| panic!("cannot run build.sh: {error}"));
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out_thread = thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err_thread = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for build.sh") {
            break status;
        }
        if started.elapsed() > BUILD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("build.sh took longer than {BUILD_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(200));
    };
    let stdout = out_thread.join().unwrap_or_default();
    let stderr = err_thread.join().unwrap_or_default();
    assert!(
        status.success(),
        "build.sh failed ({status}); run scripts/setup.sh if a tool is missing\n\
         --- stdout ---\n{stdout}--- stderr ---\n{stderr}"
    );
    print!("{stdout}");
    let dist = example.join("dist");
    for file in [
        "index.html",
        "qmp_wasm_console.js",
        "qmp_wasm_console_bg.wasm",
    ] {
        assert!(
            dist.join(file).is_file(),
            "build.sh did not produce dist/{file}\n{stdout}"
        );
    }
    dist
}

/// A static file server for one directory, on 127.0.0.1; stops on drop.
struct StaticServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl StaticServer {
    fn start(root: PathBuf) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the HTTP server");
        let addr = listener.local_addr().expect("HTTP server address");
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        let thread = thread::spawn(move || {
            for stream in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(stream) = stream {
                    // One thread per connection: Chromium opens speculative connections
                    // that send nothing, which must not hold up the real requests.
                    let root = root.clone();
                    thread::spawn(move || serve_file(&root, stream));
                }
            }
        });
        StaticServer {
            addr,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Answers one GET request with a file from `root` (no directories above it).
fn serve_file(root: &Path, stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
    }
    let path = request_line.split_whitespace().nth(1).unwrap_or("/");
    let path = path.split('?').next().unwrap_or("/");
    let name = match path.trim_start_matches('/') {
        "" => "index.html",
        name => name,
    };
    let mut stream = stream;
    let file = (!name.contains("..") && !name.contains('/'))
        .then(|| std::fs::read(root.join(name)).ok())
        .flatten();
    match file {
        Some(body) => {
            let content_type = match name.rsplit('.').next() {
                Some("html") => "text/html; charset=utf-8",
                Some("js") => "text/javascript",
                Some("wasm") => "application/wasm",
                _ => "application/octet-stream",
            };
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
                 Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            stream.write_all(&body)?;
        }
        None => {
            stream.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            )?;
        }
    }
    stream.flush()?;
    stream.shutdown(Shutdown::Both)
}

/// A port free at the time of the call on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("find a free port")
        .port()
}

/// Waits until something listens on `port` (binding it fails), without connecting: the
/// monitor serves one client, and a probe connection would take the page's place.
fn wait_listening(port: u16, process: &mut KillOnDrop) {
    let deadline = Instant::now() + PAGE_TIMEOUT;
    loop {
        process.assert_running();
        match TcpListener::bind(("127.0.0.1", port)) {
            Err(error) if error.kind() == io::ErrorKind::AddrInUse => return,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "{} did not listen on port {port} within {PAGE_TIMEOUT:?}",
            process.name
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// `qemu-storage-daemon --version` as `major.minor.micro`.
fn qsd_version(qsd: &str) -> String {
    let output = Command::new(qsd)
        .arg("--version")
        .output()
        .unwrap_or_else(|error| {
            panic!("cannot run {qsd} --version: {error}; run scripts/setup.sh")
        });
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace()
        .find(|word| {
            let parts: Vec<&str> = word.split('.').collect();
            parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok())
        })
        .unwrap_or_else(|| panic!("no version in {qsd} --version: {text:?}"))
        .to_owned()
}

/// One HTTP/1.1 request to chromedriver; returns the status and the JSON body.
fn http_json(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    try_http_json(addr, method, path, body).unwrap_or_else(|error| panic!("{error}"))
}

/// [`http_json`] without panicking (for drop paths).
fn try_http_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value), String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|error| format!("cannot connect to chromedriver at {addr}: {error}"))?;
    stream
        .set_read_timeout(Some(PAGE_TIMEOUT))
        .map_err(|error| format!("cannot set a read timeout: {error}"))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|error| format!("cannot send {method} {path} to chromedriver: {error}"))?;
    // chromedriver keeps the connection open whatever the request says: read the head,
    // then exactly the body it announces.
    let mut response = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    let read_more = |stream: &mut TcpStream, response: &mut Vec<u8>, buffer: &mut [u8]| match stream
        .read(buffer)
    {
        Ok(0) => Err(format!(
            "chromedriver closed the connection during {method} {path}"
        )),
        Ok(n) => {
            response.extend_from_slice(&buffer[..n]);
            Ok(())
        }
        Err(error) => Err(format!(
            "no answer to {method} {path} from chromedriver: {error}"
        )),
    };
    let split = loop {
        if let Some(split) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            break split;
        }
        read_more(&mut stream, &mut response, &mut buffer)?;
    };
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("no status in the answer to {method} {path}: {head}"))?;
    let content_length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        (name.trim() == "content-length").then(|| value.trim().parse::<usize>().ok())?
    });
    let chunked =
        head.contains("transfer-encoding: chunked") || head.contains("transfer-encoding:chunked");
    let body_start = split + 4;
    let payload = if let Some(length) = content_length {
        while response.len() < body_start + length {
            read_more(&mut stream, &mut response, &mut buffer)?;
        }
        response[body_start..body_start + length].to_vec()
    } else if chunked {
        while !response[body_start..].ends_with(b"0\r\n\r\n") {
            read_more(&mut stream, &mut response, &mut buffer)?;
        }
        dechunk(&response[body_start..])
    } else {
        let _ = stream.read_to_end(&mut response);
        response[body_start..].to_vec()
    };
    let value = serde_json::from_slice(&payload).map_err(|error| {
        format!(
            "answer to {method} {path} is not JSON ({error}): {}",
            String::from_utf8_lossy(&payload)
        )
    })?;
    Ok((status, value))
}

/// Decodes a chunked HTTP body.
fn dechunk(mut bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(end) = bytes.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&bytes[..end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = end + 2;
        let Some(chunk) = bytes.get(start..start + size) else {
            break;
        };
        out.extend_from_slice(chunk);
        bytes = bytes.get(start + size + 2..).unwrap_or_default();
    }
    out
}

/// Standard base64 (as WebDriver screenshots come).
fn base64_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut accumulator, mut bits) = (0u32, 0u32);
    for byte in text.bytes() {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' => continue,
            other => panic!("invalid base64 byte {other:#x} in the screenshot"),
        };
        accumulator = (accumulator << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((accumulator >> bits) as u8);
        }
    }
    out
}

/// A WebDriver session in headless Chromium; deleted (browser closed) on drop, before
/// chromedriver itself is killed.
struct Browser {
    driver_addr: SocketAddr,
    session: String,
    // Declared last: dropped after the session is deleted.
    _driver: KillOnDrop,
}

impl Browser {
    fn start(profile: &Path) -> Self {
        let port = free_port();
        let mut driver = KillOnDrop::spawn(
            "chromedriver",
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .arg("--allowed-ips=127.0.0.1")
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        );
        let driver_addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            driver.assert_running();
            if TcpStream::connect_timeout(&driver_addr, Duration::from_millis(500)).is_ok() {
                let (status, value) = http_json(driver_addr, "GET", "/status", None);
                if status == 200 && value["value"]["ready"] == json!(true) {
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready within {PAGE_TIMEOUT:?}"
            );
            thread::sleep(Duration::from_millis(100));
        }
        let capabilities = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": [
                            "--headless",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--disable-quic",
                            "--no-first-run",
                            "--disable-background-networking",
                            "--disable-component-update",
                            "--disable-sync",
                            "--window-size=1100,800",
                            format!("--user-data-dir={}", profile.display()),
                        ]
                    }
                }
            }
        });
        let (status, value) = http_json(driver_addr, "POST", "/session", Some(&capabilities));
        assert_eq!(
            status, 200,
            "chromedriver could not start Chromium: {value}"
        );
        let session = value["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id from chromedriver: {value}"))
            .to_owned();
        Browser {
            driver_addr,
            session,
            _driver: driver,
        }
    }

    /// A command on this session; fails the test on a WebDriver error.
    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = format!("/session/{}{path}", self.session);
        let (status, value) = http_json(self.driver_addr, method, &full, body.as_ref());
        assert_eq!(status, 200, "WebDriver {method} {path} failed: {value}");
        value["value"].clone()
    }

    fn navigate(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body) in the page and returns its result.
    fn script(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": [] })),
        )
    }

    fn text_of(&self, id: &str) -> String {
        self.script(&format!(
            "const e = document.getElementById({id:?}); return e ? e.textContent : null;"
        ))
        .as_str()
        .unwrap_or_default()
        .to_owned()
    }

    fn page_text(&self) -> String {
        self.script("return document.body.innerText;")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn element(&self, selector: &str) -> String {
        let value = self.command(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": selector })),
        );
        value[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {selector}: {value}"))
            .to_owned()
    }

    /// Types `line` into the command box and presses Run, as a person would.
    fn run_command(&self, line: &str) {
        let input = self.element("#command");
        self.command(
            "POST",
            &format!("/element/{input}/value"),
            Some(json!({ "text": line })),
        );
        let button = self.element("#run");
        self.command("POST", &format!("/element/{button}/click"), Some(json!({})));
    }

    /// Polls `script` until it returns a truthy value other than `false`/`null`/`""`.
    fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            let value = self.script(script);
            let done = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(text) => !text.is_empty(),
                _ => true,
            };
            if done {
                return value;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {PAGE_TIMEOUT:?} waiting for {what}\n--- page text ---\n{}",
                    self.page_text()
                );
            }
            thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&self) -> Vec<u8> {
        let value = self.command("GET", "/screenshot", None);
        base64_decode(value.as_str().expect("screenshot is a base64 string"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        // Closes Chromium; chromedriver is killed right after.
        let _ = try_http_json(self.driver_addr, "DELETE", &path, None);
    }
}

/// The script text of a wait for the reply to command `id`: its result text once it is
/// no longer pending.
fn reply_script(id: u64) -> String {
    format!(
        "const e = document.querySelector('#replies li[data-id=\"{id}\"]');\n\
         return e && e.className !== 'pending' ? e.className + ' ' + e.querySelector('.result').textContent : null;"
    )
}

#[test]
fn console_page_negotiates_runs_commands_and_lists_job_events() {
    require_file(CHROMIUM, "chromium");
    require_file(CHROMEDRIVER, "chromium-driver");
    require_file(WEBSOCKIFY, "websockify");
    let qsd = std::env::var("QMP_QSD").unwrap_or_else(|_| "qemu-storage-daemon".to_owned());
    let expected_version = qsd_version(&qsd);

    let dist = build_page();
    let server = StaticServer::start(dist);
    let scratch = ScratchDir::new();

    // QEMU 10.0.2's own WebSocket chardev (`websocket=on`) sends the greeting but never
    // hands the client's frames to a QMP monitor (a ping is answered, `qmp_capabilities`
    // never is; likely because QMP monitors read in the monitor I/O thread and the
    // WebSocket layer decodes frames in the main loop without waking it). So the monitor
    // listens on plain TCP and websockify (Debian's package) bridges the page's WebSocket
    // to it, binary frame for binary frame.
    let monitor_port = free_port();
    let mut daemon = KillOnDrop::spawn(
        "qemu-storage-daemon",
        Command::new(&qsd)
            .arg("--chardev")
            .arg(format!(
                "socket,host=127.0.0.1,port={monitor_port},server=on,wait=off,id=m0"
            ))
            .arg("--monitor")
            .arg("chardev=m0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit()),
    );
    wait_listening(monitor_port, &mut daemon);
    let websocket_port = free_port();
    let mut bridge = KillOnDrop::spawn(
        "websockify",
        Command::new(WEBSOCKIFY)
            .arg(format!("127.0.0.1:{websocket_port}"))
            .arg(format!("127.0.0.1:{monitor_port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null()),
    );
    wait_listening(websocket_port, &mut bridge);

    let profile = scratch.path().join("chromium-profile");
    std::fs::create_dir_all(&profile).expect("create the Chromium profile directory");
    let browser = Browser::start(&profile);
    let url = format!(
        "http://{}/index.html?ws=ws://127.0.0.1:{websocket_port}",
        server.addr
    );
    browser.navigate(&url);
    browser.wait_for(
        "the wasm module to load",
        "return document.body.dataset.wasm === 'ready';",
    );
    browser.wait_for(
        "negotiation (session state `ready`)",
        "return document.getElementById('session').textContent === 'ready';",
    );
    let shown_version = browser.text_of("version");
    assert!(
        shown_version.starts_with(&expected_version),
        "the page shows server version {shown_version:?}, {qsd} --version says {expected_version}"
    );

    // 1: query-version, typed in, answered with the daemon's real version.
    browser.run_command("query-version");
    let reply = browser.wait_for("the query-version reply", &reply_script(1));
    let reply = reply.as_str().unwrap_or_default();
    let mut numbers = expected_version.split('.');
    let (major, minor, micro) = (
        numbers.next().unwrap_or_default(),
        numbers.next().unwrap_or_default(),
        numbers.next().unwrap_or_default(),
    );
    for needle in [
        "ok ".to_owned(),
        format!("\"major\": {major}"),
        format!("\"minor\": {minor}"),
        format!("\"micro\": {micro}"),
    ] {
        assert!(
            reply.contains(&needle),
            "query-version reply on the page lacks {needle:?}: {reply}\n--- page text ---\n{}",
            browser.page_text()
        );
    }

    // 2: a block job started from the page; its status changes arrive as events.
    let image = scratch.path().join("created.img");
    let create = json!({
        "job-id": "job0",
        "options": { "driver": "file", "filename": image.to_str().expect("UTF-8 path"), "size": 1048576 }
    });
    browser.run_command(&format!("blockdev-create {create}"));
    let reply = browser.wait_for("the blockdev-create reply", &reply_script(2));
    assert!(
        reply.as_str().unwrap_or_default().starts_with("ok {}"),
        "blockdev-create failed on the page: {reply}\n--- page text ---\n{}",
        browser.page_text()
    );
    browser.wait_for(
        "JOB_STATUS_CHANGE concluded in the event list",
        "return document.querySelector('#events li[data-name=\"JOB_STATUS_CHANGE\"][data-status=\"concluded\"]') !== null;",
    );
    browser.run_command("job-dismiss {\"id\": \"job0\"}");
    let reply = browser.wait_for("the job-dismiss reply", &reply_script(3));
    assert!(
        reply.as_str().unwrap_or_default().starts_with("ok {}"),
        "job-dismiss failed on the page: {reply}"
    );
    browser.wait_for(
        "JOB_STATUS_CHANGE null in the event list",
        "return document.querySelector('#events li[data-status=\"null\"]') !== null;",
    );
    let statuses = browser.script(
        "return Array.from(document.querySelectorAll('#events li[data-name=\"JOB_STATUS_CHANGE\"]'), e => e.dataset.status);",
    );
    let statuses: Vec<&str> = statuses
        .as_array()
        .expect("an array of statuses")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(
        statuses,
        [
            "created",
            "running",
            "waiting",
            "pending",
            "concluded",
            "null"
        ],
        "the job's status changes, in order, on the page"
    );
    assert!(
        image.exists(),
        "blockdev-create did not create {}",
        image.display()
    );

    // 3: an error reply is shown as such.
    browser.run_command("no-such-command");
    let reply = browser.wait_for("the error reply", &reply_script(4));
    assert!(
        reply
            .as_str()
            .unwrap_or_default()
            .starts_with("error error CommandNotFound"),
        "unexpected reply to an unknown command: {reply}"
    );
    assert_eq!(browser.text_of("session"), "ready");
    daemon.assert_running();
    bridge.assert_running();

    let png = browser.screenshot();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot is not a PNG"
    );
    assert!(
        png.len() > 8 * 1024,
        "the screenshot is only {} bytes",
        png.len()
    );
    let artifacts = target_dir().join("test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("create the test-artifacts directory");
    let shot = artifacts.join("wasm-console.png");
    std::fs::write(&shot, &png).expect("write the screenshot");
    println!("screenshot: {} ({} bytes)", shot.display(), png.len());
}
