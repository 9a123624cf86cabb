//! A small SMTP client for notification emails: one session per message (EHLO, STARTTLS,
//! AUTH PLAIN or LOGIN, MAIL FROM, one RCPT TO per recipient, DATA, QUIT), bounded in time
//! and in what it reads.
//!
//! The server is the operator's (`--smtp-url`), so it is not held to the address guard.
//! Credentials never cross a connection without TLS.

mod connection;
mod message;

use connection::{Connection, Reply, Stream};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::TlsConnector;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one whole session may take, connecting included. It stays well under the timer
/// lease (60 s), so a slow server cannot make a second process send the message again.
const SESSION_TIMEOUT: Duration = Duration::from_secs(40);
/// How long QUIT is waited for once the message is sent.
const QUIT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a message was not sent. `message` goes into the step's error, which every client of
/// the workspace reads: it says what failed and the reply code, never the server's words or
/// address. `detail` is for the log.
#[derive(Debug)]
pub struct SmtpError {
    pub permanent: bool,
    pub message: String,
    pub detail: String,
}

impl SmtpError {
    fn transient(message: &str, detail: &str) -> SmtpError {
        SmtpError { permanent: false, message: message.to_owned(), detail: detail.to_owned() }
    }

    fn permanent(message: &str, detail: &str) -> SmtpError {
        SmtpError { permanent: true, message: message.to_owned(), detail: detail.to_owned() }
    }

    /// A refusal of `stage`: 4xx may pass, 5xx will not.
    fn refused(stage: &str, reply: &Reply) -> SmtpError {
        let message = format!("the SMTP server answered {} to {stage}", reply.code);
        SmtpError { permanent: reply.code >= 500, message, detail: reply.text() }
    }
}

/// When STARTTLS is used on an `smtp://` server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StartTls {
    /// When the server offers it (the default).
    Opportunistic,
    /// Always; a server that does not offer it gets nothing.
    Required,
    /// Never (a local relay with a certificate nobody trusts).
    Never,
}

struct Credentials {
    user: String,
    password: String,
}

/// The sender: the envelope address (`MAIL FROM`) and the `From` header.
struct Sender {
    envelope: String,
    header: String,
}

/// The configured SMTP server. Cheap to share; each message opens its own connection.
pub struct Mailer {
    host: String,
    port: u16,
    implicit_tls: bool,
    starttls: StartTls,
    credentials: Option<Credentials>,
    sender: Sender,
    tls: TlsConnector,
}

impl fmt::Debug for Mailer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailer").field("host", &self.host).field("port", &self.port).finish()
    }
}

/// One message to send.
pub struct Mail<'a> {
    pub recipients: &'a [String],
    pub subject: Option<&'a str>,
    pub body: &'a str,
    pub html: bool,
    pub date_ms: i64,
}

/// What the server did with a message's recipients.
#[derive(Debug)]
pub struct Sent {
    pub accepted: Vec<String>,
    pub refused: Vec<String>,
    /// `None` when no recipient was accepted and nothing was sent.
    pub message_id: Option<String>,
}

impl Mailer {
    /// A mailer for `url` (`smtp://` or `smtps://`, with optional `user:password@` and
    /// `?starttls=opportunistic|required|never`), sending as `from` (`address` or
    /// `Name <address>`), trusting the built-in roots and the PEM certificates in
    /// `extra_ca_pem`.
    pub fn new(url: &str, from: &str, extra_ca_pem: Option<&[u8]>) -> Result<Mailer, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("not a URL: {e}"))?;
        let implicit_tls = match parsed.scheme() {
            "smtp" => false,
            "smtps" => true,
            other => return Err(format!("the scheme must be smtp or smtps, not {other}")),
        };
        let host = host_of(&parsed)?;
        let port = parsed.port().unwrap_or(if implicit_tls { 465 } else { 587 });
        let starttls = starttls_of(&parsed, implicit_tls)?;
        let credentials = credentials_of(&parsed)?;
        if credentials.is_some() && starttls == StartTls::Never {
            return Err("starttls=never with credentials would send the password in clear".into());
        }
        let sender = sender_of(from).map_err(|e| format!("--smtp-from: {e}"))?;
        let tls = connection::tls_connector(extra_ca_pem)?;
        Ok(Mailer { host, port, implicit_tls, starttls, credentials, sender, tls })
    }

    /// Sends one message; recipients the server refuses are listed, not failed.
    pub async fn send(&self, mail: &Mail<'_>) -> Result<Sent, SmtpError> {
        match tokio::time::timeout(SESSION_TIMEOUT, self.session(mail)).await {
            Ok(sent) => sent,
            Err(_) => Err(SmtpError::transient(
                "the SMTP server did not finish in time",
                "session timeout",
            )),
        }
    }

    async fn session(&self, mail: &Mail<'_>) -> Result<Sent, SmtpError> {
        let mut conn = self.open().await?;
        let mail_from = format!("MAIL FROM:<{}>", self.sender.envelope);
        expect_positive(&mut conn, &mail_from, "MAIL FROM").await?;
        let (accepted, refused) = recipients(&mut conn, mail.recipients).await?;
        if accepted.is_empty() {
            quit(&mut conn).await;
            return Ok(Sent { accepted, refused, message_id: None });
        }

        let reply = conn.command("DATA").await?;
        if reply.code != 354 {
            return Err(SmtpError::refused("DATA", &reply));
        }
        let message_id = self.message_id();
        let date = date_header(mail.date_ms);
        let email = message::Email {
            from: &self.sender.header,
            to: &accepted,
            subject: mail.subject,
            body: mail.body,
            html: mail.html,
            date: date.as_deref(),
            message_id: &message_id,
        };
        conn.write_all(&message::data_block(&message::format(&email))).await?;
        let reply = conn.reply().await?;
        if !reply.is_positive() {
            return Err(SmtpError::refused("the message", &reply));
        }
        quit(&mut conn).await;
        Ok(Sent { accepted, refused, message_id: Some(message_id) })
    }

    /// Connects, reads the greeting, says EHLO, starts TLS and authenticates as configured.
    async fn open(&self) -> Result<Connection, SmtpError> {
        let tcp = self.connect().await?;
        let ehlo_name = ehlo_name(tcp.local_addr().ok());
        let mut conn = Connection::new(Stream::Plain(tcp));
        if self.implicit_tls {
            conn = conn.start_tls(&self.tls, self.server_name()?).await?;
        }
        // A server that turns connections away may take them again later, whatever its code.
        let greeting = conn.reply().await?;
        if greeting.code != 220 {
            let message = format!("the SMTP server answered {} to the connection", greeting.code);
            return Err(SmtpError::transient(&message, &greeting.text()));
        }

        let mut extensions = ehlo(&mut conn, &ehlo_name).await?;
        if !conn.is_tls() {
            conn = self.start_tls(conn, &extensions).await?;
            if conn.is_tls() {
                extensions = ehlo(&mut conn, &ehlo_name).await?;
            }
        }
        if let Some(credentials) = &self.credentials {
            authenticate(&mut conn, credentials, &extensions).await?;
        }
        Ok(conn)
    }

    async fn connect(&self) -> Result<TcpStream, SmtpError> {
        let unreachable = "the SMTP server could not be reached";
        let address = (self.host.as_str(), self.port);
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(tcp)) => Ok(tcp),
            Ok(Err(e)) => Err(SmtpError::transient(unreachable, &e.to_string())),
            Err(_) => Err(SmtpError::transient(unreachable, "connect timeout")),
        }
    }

    /// STARTTLS as the URL asks; the connection is returned as it is when TLS is not used.
    async fn start_tls(
        &self,
        mut conn: Connection,
        extensions: &[String],
    ) -> Result<Connection, SmtpError> {
        let offered = extensions.iter().any(|line| keyword(line) == "STARTTLS");
        let needed = self.starttls == StartTls::Required || self.credentials.is_some();
        if self.starttls == StartTls::Never || (!offered && !needed) {
            return Ok(conn);
        }
        if !offered {
            let why = "the SMTP server does not offer STARTTLS, which is required";
            return Err(SmtpError::permanent(why, "STARTTLS not in the EHLO reply"));
        }
        expect_positive(&mut conn, "STARTTLS", "STARTTLS").await?;
        conn.start_tls(&self.tls, self.server_name()?).await
    }

    fn server_name(&self) -> Result<ServerName<'static>, SmtpError> {
        ServerName::try_from(self.host.clone())
            .map_err(|_| SmtpError::permanent("the SMTP host is not a valid TLS name", &self.host))
    }

    /// `<random hex.assent@sender's domain>`.
    fn message_id(&self) -> String {
        let mut bytes = [0u8; 12];
        let random = getrandom::fill(&mut bytes).map(|()| hex::encode(bytes)).unwrap_or_default();
        let domain = self.sender.envelope.rsplit('@').next().unwrap_or("assent.invalid");
        format!("<{random}.assent@{domain}>")
    }
}

/// EHLO; the extension lines of the answer (the first line is the server's name).
async fn ehlo(conn: &mut Connection, name: &str) -> Result<Vec<String>, SmtpError> {
    let reply = conn.command(&format!("EHLO {name}")).await?;
    if !reply.is_positive() {
        return Err(SmtpError::refused("EHLO", &reply));
    }
    Ok(reply.lines.into_iter().skip(1).collect())
}

/// The upper-cased first word of an extension line.
fn keyword(line: &str) -> String {
    line.split([' ', '=']).next().unwrap_or_default().to_ascii_uppercase()
}

/// AUTH PLAIN when offered, else AUTH LOGIN.
async fn authenticate(
    conn: &mut Connection,
    credentials: &Credentials,
    extensions: &[String],
) -> Result<(), SmtpError> {
    use base64::engine::general_purpose::STANDARD as BASE64;
    use base64::Engine as _;

    let mechanisms: Vec<String> = extensions
        .iter()
        .filter(|line| keyword(line) == "AUTH")
        .flat_map(|line| line.get(5..).unwrap_or_default().split(' '))
        .map(str::to_ascii_uppercase)
        .collect();
    let offers = |name: &str| mechanisms.iter().any(|m| m == name);
    let (user, password) = (&credentials.user, &credentials.password);
    let reply = if offers("PLAIN") {
        let token = BASE64.encode(format!("\0{user}\0{password}"));
        conn.command(&format!("AUTH PLAIN {token}")).await?
    } else if offers("LOGIN") {
        let user_token = BASE64.encode(user);
        for (line, stage) in [("AUTH LOGIN", "AUTH LOGIN"), (user_token.as_str(), "the user name")]
        {
            let reply = conn.command(line).await?;
            if reply.code != 334 {
                return Err(SmtpError::refused(stage, &reply));
            }
        }
        conn.command(&BASE64.encode(password)).await?
    } else {
        let why = "the SMTP server offers neither AUTH PLAIN nor AUTH LOGIN";
        return Err(SmtpError::permanent(why, &mechanisms.join(" ")));
    };
    if reply.code != 235 {
        return Err(SmtpError::refused("AUTH", &reply));
    }
    Ok(())
}

/// One RCPT TO per recipient: the accepted and the refused. An address that cannot be
/// written in a command (not ASCII, angle brackets) is refused without asking.
async fn recipients(
    conn: &mut Connection,
    recipients: &[String],
) -> Result<(Vec<String>, Vec<String>), SmtpError> {
    let (mut accepted, mut refused) = (Vec::new(), Vec::new());
    for recipient in recipients {
        let writable = recipient.bytes().all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>');
        if !writable {
            refused.push(recipient.clone());
            continue;
        }
        let reply = conn.command(&format!("RCPT TO:<{recipient}>")).await?;
        if reply.code == 421 {
            return Err(SmtpError::refused("RCPT TO", &reply));
        }
        if reply.is_positive() {
            accepted.push(recipient.clone());
        } else {
            tracing::debug!(reply = %reply.text(), "the SMTP server refused a recipient");
            refused.push(recipient.clone());
        }
    }
    Ok((accepted, refused))
}

async fn expect_positive(
    conn: &mut Connection,
    line: &str,
    stage: &str,
) -> Result<Reply, SmtpError> {
    let reply = conn.command(line).await?;
    if !reply.is_positive() {
        return Err(SmtpError::refused(stage, &reply));
    }
    Ok(reply)
}

/// QUIT, briefly: the message is already the server's.
async fn quit(conn: &mut Connection) {
    let _ = tokio::time::timeout(QUIT_TIMEOUT, conn.command("QUIT")).await;
}

/// The EHLO argument: this end's address as an address literal.
fn ehlo_name(local: Option<SocketAddr>) -> String {
    match local {
        Some(SocketAddr::V4(a)) => format!("[{}]", a.ip()),
        Some(SocketAddr::V6(a)) => format!("[IPv6:{}]", a.ip()),
        None => "localhost".to_owned(),
    }
}

/// RFC 5322 date in UTC.
fn date_header(now_ms: i64) -> Option<String> {
    let timestamp = jiff::Timestamp::from_millisecond(now_ms).ok()?;
    let zoned = timestamp.to_zoned_datetime(jiff::tz::TimeZone::UTC);
    jiff::fmt::rfc2822::to_string(&zoned).ok()
}

fn host_of(url: &url::Url) -> Result<String, String> {
    match url.host() {
        Some(url::Host::Domain(name)) if !name.is_empty() => Ok(name.to_owned()),
        Some(url::Host::Ipv4(ip)) => Ok(ip.to_string()),
        Some(url::Host::Ipv6(ip)) => Ok(ip.to_string()),
        _ => Err("the URL has no host".into()),
    }
}

fn starttls_of(url: &url::Url, implicit_tls: bool) -> Result<StartTls, String> {
    if !matches!(url.path(), "" | "/") {
        return Err("the URL must not have a path".into());
    }
    let mut mode = StartTls::Opportunistic;
    for (key, value) in url.query_pairs() {
        mode = match (key.as_ref(), value.as_ref()) {
            ("starttls", "opportunistic") => StartTls::Opportunistic,
            ("starttls", "required") => StartTls::Required,
            ("starttls", "never") => StartTls::Never,
            ("starttls", other) => {
                return Err(format!(
                    "starttls must be opportunistic, required or never, not {other}"
                ))
            }
            (other, _) => return Err(format!("unknown URL parameter {other}")),
        };
    }
    if implicit_tls && mode != StartTls::Opportunistic {
        return Err("starttls applies to smtp:// only; smtps:// is TLS from the start".into());
    }
    Ok(mode)
}

fn credentials_of(url: &url::Url) -> Result<Option<Credentials>, String> {
    let decode = |raw: &str| {
        percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .map(|s| s.into_owned())
            .map_err(|_| "the credentials are not UTF-8".to_owned())
    };
    match (url.username(), url.password()) {
        ("", None) => Ok(None),
        (user, Some(password)) if !user.is_empty() => {
            Ok(Some(Credentials { user: decode(user)?, password: decode(password)? }))
        }
        _ => Err("credentials need both a user name and a password".into()),
    }
}

/// `address` or `Name <address>`; the address plain ASCII with one `@`.
fn sender_of(raw: &str) -> Result<Sender, String> {
    let raw = raw.trim();
    let (name, address) = match (raw.rfind('<'), raw.strip_suffix('>')) {
        (Some(open), Some(without_close)) => (raw[..open].trim(), &without_close[open + 1..]),
        _ => ("", raw),
    };
    let parts: Vec<&str> = address.split('@').collect();
    let plain = address.bytes().all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:\"".contains(&b));
    let well_formed = parts.len() == 2 && parts.iter().all(|p| !p.is_empty());
    if !plain || !well_formed {
        return Err(format!("{address:?} is not an email address Assent can send from"));
    }
    let header = match name {
        "" => address.to_owned(),
        name => format!("{} <{address}>", message::display_name(name)),
    };
    Ok(Sender { envelope: address.to_owned(), header })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let ok = |url: &str| Mailer::new(url, "assent@example.com", None).expect(url);
        let m = ok("smtp://mail.example.com");
        assert_eq!((m.host.as_str(), m.port, m.implicit_tls), ("mail.example.com", 587, false));
        assert_eq!(m.starttls, StartTls::Opportunistic);
        assert!(m.credentials.is_none());
        let m = ok("smtps://mail.example.com");
        assert_eq!((m.port, m.implicit_tls), (465, true));
        let m = ok("smtp://us%40er:p%3Ass@127.0.0.1:2525?starttls=required");
        assert_eq!((m.host.as_str(), m.port), ("127.0.0.1", 2525));
        let credentials = m.credentials.as_ref().unwrap();
        assert_eq!((credentials.user.as_str(), credentials.password.as_str()), ("us@er", "p:ss"));
        assert_eq!(m.starttls, StartTls::Required);
        assert_eq!(ok("smtp://[::1]:25?starttls=never").host, "::1");

        let refused = [
            ("http://mail.example.com", "scheme"),
            ("smtp://", "host"),
            ("smtp://user@mail.example.com", "both"),
            ("smtp://mail.example.com/x", "path"),
            ("smtp://mail.example.com?starttls=maybe", "starttls must be"),
            ("smtp://mail.example.com?tls=1", "unknown URL parameter"),
            ("smtps://mail.example.com?starttls=required", "smtp:// only"),
            ("smtp://u:p@mail.example.com?starttls=never", "in clear"),
        ];
        for (url, words) in refused {
            let err = Mailer::new(url, "assent@example.com", None).expect_err(url);
            assert!(err.contains(words), "{url}: {err}");
        }
    }

    #[test]
    fn senders() {
        let cases = [
            ("assent@example.com", Some(("assent@example.com", "assent@example.com"))),
            (
                "Assent <assent@example.com>",
                Some(("assent@example.com", "Assent <assent@example.com>")),
            ),
            (
                "Acme, Inc. <a@example.com>",
                Some(("a@example.com", "\"Acme, Inc.\" <a@example.com>")),
            ),
            ("no-at-sign", None),
            ("a@b@example.com", None),
            ("a@localhost", Some(("a@localhost", "a@localhost"))),
            ("a b@example.com", None),
            ("a@example.com>\r\nRCPT TO:<x@example.com", None),
        ];
        for (raw, expected) in cases {
            let sender = sender_of(raw).ok();
            let got = sender.as_ref().map(|s| (s.envelope.as_str(), s.header.as_str()));
            assert_eq!(got, expected, "{raw}");
        }
    }

    #[test]
    fn dates_are_rfc_5322() {
        assert_eq!(
            date_header(1_796_083_200_000).as_deref(),
            Some("Tue, 1 Dec 2026 00:00:00 +0000")
        );
    }
}
