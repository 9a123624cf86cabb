//! A real SMTP server on 127.0.0.1 for the notification tests. It speaks the protocol
//! (EHLO, STARTTLS with the test CA, AUTH PLAIN and LOGIN, MAIL, RCPT, DATA with
//! dot-stuffing, RSET, QUIT), records every message it accepts, decoded with its own
//! quoted-printable and RFC 2047 readers, and can refuse recipients, turn connections away,
//! drop them, or stop listening.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::TlsAcceptor;

/// How the server is set up.
#[derive(Clone, Default)]
pub struct SmtpOptions {
    /// Offer STARTTLS with this certificate.
    pub starttls: Option<Arc<ServerConfig>>,
    /// Speak TLS from the first byte (`smtps`) with this certificate.
    pub implicit_tls: Option<Arc<ServerConfig>>,
    /// Require AUTH with this user and password before MAIL.
    pub auth: Option<(&'static str, &'static str)>,
    /// The mechanisms EHLO lists when AUTH is required; `PLAIN LOGIN` when empty.
    pub auth_mechanisms: &'static str,
}

/// What the server does with a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Greeting {
    /// `220`, then the protocol.
    Ready,
    /// `554`, then the connection is closed.
    TurnAway,
    /// The connection is closed at once.
    Drop,
}

/// One accepted message.
#[derive(Clone, Debug)]
pub struct Message {
    pub sender: String,
    /// The recipients the server accepted.
    pub recipients: Vec<String>,
    /// Header names in lower case, values unfolded and, where encoded, decoded.
    pub headers: Vec<(String, String)>,
    pub subject: String,
    /// The body decoded from quoted-printable.
    pub body: String,
    /// The DATA block with dot-stuffing undone.
    pub raw: String,
    pub over_tls: bool,
    pub authenticated_as: Option<String>,
}

impl Message {
    pub fn header(&self, name: &str) -> &str {
        let found = self.headers.iter().find(|(n, _)| n == name);
        found.map(|(_, v)| v.as_str()).unwrap_or("")
    }
}

struct Shared {
    options: SmtpOptions,
    greeting: Mutex<Greeting>,
    refused: Mutex<HashSet<String>>,
    messages: Mutex<Vec<Message>>,
    /// Every command line received, `AUTH` arguments hidden, per connection.
    transcripts: Mutex<Vec<Vec<String>>>,
    connections: AtomicUsize,
    changed: Notify,
}

pub struct SmtpServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        if let Some(server) = self.server.lock().unwrap().take() {
            server.abort();
        }
    }
}

impl SmtpServer {
    pub async fn start(options: SmtpOptions) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("SMTP server binds");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            options,
            greeting: Mutex::new(Greeting::Ready),
            refused: Mutex::new(HashSet::new()),
            messages: Mutex::new(Vec::new()),
            transcripts: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
            changed: Notify::new(),
        });
        let server = tokio::spawn(accept_loop(listener, shared.clone()));
        SmtpServer { addr, shared, server: Mutex::new(Some(server)) }
    }

    /// `smtp://` (or `smtps://`) with `credentials` (`user:password@`) and `query`.
    pub fn url(&self, credentials: &str, query: &str) -> String {
        let scheme = if self.shared.options.implicit_tls.is_some() { "smtps" } else { "smtp" };
        format!("{scheme}://{credentials}{}{query}", self.addr)
    }

    pub fn set_greeting(&self, greeting: Greeting) {
        *self.shared.greeting.lock().unwrap() = greeting;
    }

    /// Answers `550` to RCPT TO for these addresses.
    pub fn refuse(&self, recipients: &[&str]) {
        let mut refused = self.shared.refused.lock().unwrap();
        refused.extend(recipients.iter().map(|r| r.to_string()));
    }

    /// Stops listening: connections are refused until `resume`.
    pub fn pause(&self) {
        if let Some(server) = self.server.lock().unwrap().take() {
            server.abort();
        }
    }

    pub async fn resume(&self) {
        let listener = TcpListener::bind(self.addr).await.expect("SMTP server binds again");
        let server = tokio::spawn(accept_loop(listener, self.shared.clone()));
        *self.server.lock().unwrap() = Some(server);
    }

    pub fn messages(&self) -> Vec<Message> {
        self.shared.messages.lock().unwrap().clone()
    }

    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The command lines of every connection so far.
    pub fn transcripts(&self) -> Vec<Vec<String>> {
        self.shared.transcripts.lock().unwrap().clone()
    }

    /// Waits (at most 20 s of real time) until `count` messages have been accepted.
    pub async fn wait_for(&self, count: usize) -> Vec<Message> {
        self.wait_until(&format!("{count} messages"), || self.messages().len() >= count).await;
        self.messages()
    }

    /// Waits (at most 20 s of real time) until `count` connections have ended.
    pub async fn wait_for_sessions(&self, count: usize) {
        let ended = || self.transcripts().len() >= count;
        self.wait_until(&format!("{count} sessions"), ended).await;
    }

    async fn wait_until(&self, what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let changed = self.shared.changed.notified();
            if done() {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, changed).await.is_err() {
                panic!("the SMTP server never saw {what}: {:?}", self.transcripts());
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else { continue };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        tokio::spawn(async move {
            let mut session = Session::default();
            let _ = connection(tcp, &shared, &mut session).await;
            shared.transcripts.lock().unwrap().push(session.transcript);
            shared.changed.notify_waiters();
        });
    }
}

/// What one connection has been told so far.
#[derive(Default)]
struct Session {
    tls: bool,
    authenticated_as: Option<String>,
    sender: Option<String>,
    recipients: Vec<String>,
    transcript: Vec<String>,
}

enum End {
    Quit,
    StartTls,
}

async fn connection(
    mut tcp: TcpStream,
    shared: &Arc<Shared>,
    session: &mut Session,
) -> std::io::Result<()> {
    let greeting = *shared.greeting.lock().unwrap();
    match greeting {
        Greeting::Drop => return Ok(()),
        Greeting::TurnAway => return tcp.write_all(b"554 5.3.2 not now\r\n").await,
        Greeting::Ready => {}
    }
    if let Some(config) = &shared.options.implicit_tls {
        let mut tls = BufReader::new(TlsAcceptor::from(config.clone()).accept(tcp).await?);
        session.tls = true;
        tls.get_mut().write_all(b"220 smtp.test ready\r\n").await?;
        return speak(&mut tls, shared, session).await.map(|_| ());
    }
    let mut plain = BufReader::new(tcp);
    plain.get_mut().write_all(b"220 smtp.test ready\r\n").await?;
    if let End::StartTls = speak(&mut plain, shared, session).await? {
        let config = shared.options.starttls.clone().expect("STARTTLS was offered");
        let tls = TlsAcceptor::from(config).accept(plain.into_inner()).await?;
        *session = Session {
            tls: true,
            transcript: std::mem::take(&mut session.transcript),
            ..Default::default()
        };
        speak(&mut BufReader::new(tls), shared, session).await?;
    }
    Ok(())
}

/// The command loop, until QUIT, STARTTLS or the end of the stream.
async fn speak<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    shared: &Arc<Shared>,
    session: &mut Session,
) -> std::io::Result<End> {
    loop {
        let Some(line) = read_line(io).await? else { return Ok(End::Quit) };
        let verb = line.split([' ', ':']).next().unwrap_or_default().to_ascii_uppercase();
        let logged = if verb == "AUTH" { "AUTH ...".to_owned() } else { line.clone() };
        session.transcript.push(logged);
        let reply = match verb.as_str() {
            "EHLO" => ehlo(shared, session),
            "HELO" | "NOOP" => "250 OK".to_owned(),
            "STARTTLS" if shared.options.starttls.is_some() && !session.tls => {
                io.get_mut().write_all(b"220 2.0.0 go ahead\r\n").await?;
                return Ok(End::StartTls);
            }
            "AUTH" => auth(io, shared, session, &line).await?,
            "MAIL" => mail(shared, session, &line),
            "RCPT" => rcpt(shared, session, &line),
            "DATA" if session.recipients.is_empty() => "554 5.5.1 no valid recipients".to_owned(),
            "DATA" => data(io, shared, session).await?,
            "RSET" => {
                (session.sender, session.recipients) = (None, Vec::new());
                "250 OK".to_owned()
            }
            "QUIT" => {
                io.get_mut().write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(End::Quit);
            }
            _ => "502 5.5.2 command not implemented".to_owned(),
        };
        io.get_mut().write_all(format!("{reply}\r\n").as_bytes()).await?;
    }
}

async fn read_line<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if io.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    assert!(line.ends_with("\r\n"), "SMTP lines end in CRLF: {line:?}");
    Ok(Some(line.trim_end_matches("\r\n").to_owned()))
}

fn ehlo(shared: &Shared, session: &Session) -> String {
    let mut lines = vec!["smtp.test".to_owned(), "8BITMIME".to_owned()];
    if shared.options.starttls.is_some() && !session.tls {
        lines.push("STARTTLS".into());
    }
    if shared.options.auth.is_some() {
        let mechanisms = match shared.options.auth_mechanisms {
            "" => "PLAIN LOGIN",
            given => given,
        };
        lines.push(format!("AUTH {mechanisms}"));
    }
    lines.push("HELP".into());
    let last = lines.len() - 1;
    let numbered: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
        .collect();
    numbered.join("\r\n")
}

async fn auth<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    shared: &Shared,
    session: &mut Session,
    line: &str,
) -> std::io::Result<String> {
    let words: Vec<&str> = line.split(' ').collect();
    let decode = |b64: &str| String::from_utf8(BASE64.decode(b64).unwrap_or_default()).unwrap();
    let (user, password) = match words.get(1).map(|m| m.to_ascii_uppercase()).as_deref() {
        Some("PLAIN") => {
            let token = decode(words.get(2).copied().unwrap_or_default());
            let parts: Vec<&str> = token.split('\0').collect();
            (parts.get(1).unwrap_or(&"").to_string(), parts.get(2).unwrap_or(&"").to_string())
        }
        Some("LOGIN") => {
            io.get_mut().write_all(b"334 VXNlcm5hbWU6\r\n").await?;
            let user = decode(&read_line(io).await?.unwrap_or_default());
            io.get_mut().write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
            (user, decode(&read_line(io).await?.unwrap_or_default()))
        }
        _ => return Ok("504 5.5.4 mechanism not supported".into()),
    };
    let holds = shared.options.auth.is_some_and(|(u, p)| u == user && p == password);
    if !holds {
        return Ok("535 5.7.8 authentication credentials invalid".into());
    }
    session.authenticated_as = Some(user);
    Ok("235 2.7.0 authenticated".into())
}

fn mail(shared: &Shared, session: &mut Session, line: &str) -> String {
    if shared.options.auth.is_some() && session.authenticated_as.is_none() {
        return "530 5.7.0 authentication required".into();
    }
    session.sender = Some(address_in(line));
    session.recipients.clear();
    "250 2.1.0 OK".into()
}

fn rcpt(shared: &Shared, session: &mut Session, line: &str) -> String {
    if session.sender.is_none() {
        return "503 5.5.1 MAIL first".into();
    }
    let recipient = address_in(line);
    if shared.refused.lock().unwrap().contains(&recipient) {
        return "550 5.1.1 no such user".into();
    }
    session.recipients.push(recipient);
    "250 2.1.5 OK".into()
}

/// The address between `<` and `>`.
fn address_in(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line.rfind('>').unwrap_or(line.len());
    line[start..end].to_owned()
}

async fn data<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut BufReader<S>,
    shared: &Shared,
    session: &mut Session,
) -> std::io::Result<String> {
    io.get_mut().write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
    let mut lines = Vec::new();
    loop {
        let Some(line) = read_line(io).await? else { return Ok("451 cut short".into()) };
        if line == "." {
            break;
        }
        lines.push(line.strip_prefix('.').map(str::to_owned).unwrap_or(line));
    }
    let message = parse(
        lines.join("\r\n"),
        session.sender.take().unwrap_or_default(),
        std::mem::take(&mut session.recipients),
        session,
    );
    shared.messages.lock().unwrap().push(message);
    shared.changed.notify_waiters();
    Ok("250 2.0.0 queued".into())
}

fn parse(raw: String, sender: String, recipients: Vec<String>, session: &Session) -> Message {
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            let last = headers.last_mut().expect("a continuation follows a header");
            last.1.push_str(line);
            continue;
        }
        let (name, value) = line.split_once(':').expect("a header has a colon");
        headers.push((name.to_ascii_lowercase(), value.trim_start().to_owned()));
    }
    for (_, value) in &mut headers {
        *value = decode_words(value);
    }
    let subject = headers.iter().find(|(n, _)| n == "subject").map(|(_, v)| v.clone());
    Message {
        sender,
        recipients,
        subject: subject.unwrap_or_default(),
        body: decode_quoted_printable(body).replace("\r\n", "\n"),
        raw: raw.clone(),
        headers,
        over_tls: session.tls,
        authenticated_as: session.authenticated_as.clone(),
    }
}

/// RFC 2047: `=?UTF-8?B?...?=` words decoded; the space between two of them dropped.
fn decode_words(value: &str) -> String {
    let mut out = String::new();
    let mut previous_was_word = false;
    for (i, token) in value.split([' ', '\t']).filter(|t| !t.is_empty()).enumerate() {
        let inner = token.strip_prefix("=?UTF-8?B?").and_then(|t| t.strip_suffix("?="));
        let is_word = inner.is_some();
        if i > 0 && !(is_word && previous_was_word) {
            out.push(' ');
        }
        match inner {
            Some(b64) => out.push_str(&String::from_utf8(BASE64.decode(b64).unwrap()).unwrap()),
            None => out.push_str(token),
        }
        previous_was_word = is_word;
    }
    out
}

fn decode_quoted_printable(body: &str) -> String {
    let mut bytes = Vec::new();
    let joined = body.replace("=\r\n", "");
    let mut input = joined.bytes();
    while let Some(b) = input.next() {
        if b != b'=' {
            bytes.push(b);
            continue;
        }
        let hex: Vec<u8> = input.by_ref().take(2).collect();
        let text = std::str::from_utf8(&hex).unwrap();
        bytes.push(u8::from_str_radix(text, 16).expect("=XX escapes are hex"));
    }
    String::from_utf8(bytes).expect("the body is UTF-8")
}
